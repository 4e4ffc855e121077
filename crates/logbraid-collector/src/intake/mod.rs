//! Decoders for the formats other programs send: Python `logging` pickles
//! and syslog. Each turns bytes into [`logbraid::OwnedRecord`]s and never
//! panics on input.
