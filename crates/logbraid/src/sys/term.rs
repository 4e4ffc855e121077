//! The terminal a console writes to.

use crate::sink::ConsoleStream;

/// The width in columns of the terminal `stream` is attached to, `None`
/// when it is not a terminal or does not say (a width of 0).
pub(crate) fn columns(stream: ConsoleStream) -> Option<usize> {
    let size = match stream {
        ConsoleStream::Stderr => rustix::termios::tcgetwinsize(std::io::stderr()),
        ConsoleStream::Stdout => rustix::termios::tcgetwinsize(std::io::stdout()),
    }
    .ok()?;
    (size.ws_col > 0).then_some(usize::from(size.ws_col))
}
