//! Turns the arena into a tree of values, checking the limits.

use super::limits::{LimitKind, Limits, PickleError, MAX_DEPTH_CAP, R};
use super::machine::{slot, Node};
use super::objects::{self, Object};
use super::value::PickleValue;

/// Turns the arena into a tree, iteratively, checking the limits on the
/// result and refusing cycles.
pub(super) struct Builder<'a, 'b> {
    pub(super) arena: &'b [Node<'a>],
    pub(super) limits: &'b Limits,
    pub(super) offset: usize,
    pub(super) on_path: Vec<bool>,
    pub(super) tasks: Vec<Task>,
    pub(super) values: Vec<PickleValue<'a>>,
    /// Sets become [`Object`]s (`{1, 2}`) rather than lists.
    pub(super) objects: bool,
    /// Working memory the machine charged, to which the builder adds its
    /// own, against [`Limits::max_work_bytes`].
    pub(super) work: usize,
}

/// Adds `bytes` to the working memory `work`, checking the limit.
fn charge(work: &mut usize, bytes: usize, limits: &Limits, offset: usize) -> R<()> {
    *work = work.saturating_add(bytes);
    if *work > limits.max_work_bytes {
        return Err(PickleError::Limit {
            kind: LimitKind::Work,
            max: limits.max_work_bytes,
            offset,
        });
    }
    Ok(())
}

#[derive(Debug)]
pub(super) enum Task {
    Visit(usize, usize),
    Finish(usize),
}

impl<'a> Builder<'a, '_> {
    pub(super) fn limit(&self, kind: LimitKind, max: usize) -> PickleError {
        PickleError::Limit {
            kind,
            max,
            offset: self.offset,
        }
    }

    pub(super) fn build(&mut self, root: usize) -> R<PickleValue<'a>> {
        let max_depth = self.limits.max_depth.min(MAX_DEPTH_CAP);
        let offset = self.offset;
        let limits = self.limits;
        let mut work = self.work;
        charge(&mut work, self.arena.len(), limits, offset)?;
        let on_path = &mut self.on_path;
        on_path.clear();
        on_path.resize(self.arena.len(), false);
        let tasks = &mut self.tasks;
        tasks.clear();
        tasks.push(Task::Visit(root, 1));
        let values = &mut self.values;
        values.clear();
        let mut elements = 0usize;
        let mut bytes = 0usize;
        while let Some(task) = tasks.pop() {
            match task {
                Task::Visit(i, depth) => {
                    elements += 1;
                    if elements > self.limits.max_elements {
                        return Err(self.limit(LimitKind::Elements, self.limits.max_elements));
                    }
                    let node = &self.arena[i];
                    let call_children;
                    let children: &[usize] = match node {
                        Node::List(c) | Node::Tuple(c) | Node::Set(c) | Node::FrozenSet(c) => c,
                        Node::Dict(_) => &[],
                        Node::Call {
                            func, args, state, ..
                        } => {
                            call_children = [*func, *args, state.unwrap_or(usize::MAX)];
                            let n = if state.is_some() { 3 } else { 2 };
                            &call_children[..n]
                        }
                        Node::Scalar(_) | Node::Global(..) => {
                            let v = match node {
                                Node::Global(module, name, op, at) => {
                                    Object::global(module, name, op, *at).into()
                                }
                                Node::Scalar(v) => v.clone(),
                                _ => unreachable!("matched above"),
                            };
                            add_bytes(&mut bytes, &v, self.limits)
                                .map_err(|(kind, max)| PickleError::Limit { kind, max, offset })?;
                            charge(
                                &mut work,
                                slot::<PickleValue<'a>>() + v.scalar_size(),
                                limits,
                                offset,
                            )?;
                            values.push(v);
                            continue;
                        }
                    };
                    if depth > max_depth {
                        return Err(self.limit(LimitKind::Depth, max_depth));
                    }
                    if on_path[i] {
                        return Err(PickleError::Cycle {
                            offset: self.offset,
                        });
                    }
                    let flat = if self.objects && matches!(node, Node::Set(_) | Node::FrozenSet(_))
                    {
                        Ok(None)
                    } else {
                        let mut count = Count {
                            elements: &mut elements,
                            bytes: &mut bytes,
                            work: &mut work,
                        };
                        flat(self.arena, node, &mut count, self.limits)
                    };
                    match flat {
                        Ok(Some(v)) => {
                            charge(&mut work, slot::<PickleValue<'a>>(), limits, offset)?;
                            values.push(v);
                            continue;
                        }
                        Ok(None) => {}
                        Err((kind, max)) => {
                            return Err(PickleError::Limit {
                                kind,
                                max,
                                offset: self.offset,
                            })
                        }
                    }
                    on_path[i] = true;
                    let n = match node {
                        Node::Dict(pairs) => 2 * pairs.len(),
                        _ => children.len(),
                    };
                    // The tasks, and the values they become.
                    charge(
                        &mut work,
                        (n + 1) * (slot::<Task>() + slot::<PickleValue<'a>>()),
                        limits,
                        offset,
                    )?;
                    tasks.push(Task::Finish(i));
                    if let Node::Dict(pairs) = node {
                        for &(k, v) in pairs.iter().rev() {
                            tasks.push(Task::Visit(v, depth + 1));
                            tasks.push(Task::Visit(k, depth + 1));
                        }
                    } else {
                        for &c in children.iter().rev() {
                            tasks.push(Task::Visit(c, depth + 1));
                        }
                    }
                }
                Task::Finish(i) => {
                    on_path[i] = false;
                    let node = &self.arena[i];
                    let value = match node {
                        Node::Dict(pairs) => {
                            let items = values.split_off(values.len() - 2 * pairs.len());
                            let mut it = items.into_iter();
                            let mut out = Vec::with_capacity(pairs.len());
                            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                                out.push((k, v));
                            }
                            PickleValue::Dict(out)
                        }
                        Node::Tuple(c) => {
                            PickleValue::Tuple(values.split_off(values.len() - c.len()))
                        }
                        Node::Set(c) | Node::FrozenSet(c) if self.objects => {
                            let items = values.split_off(values.len() - c.len());
                            let frozen = matches!(node, Node::FrozenSet(_));
                            objects::set(&items, frozen).into()
                        }
                        Node::List(c) | Node::Set(c) | Node::FrozenSet(c) => {
                            PickleValue::List(values.split_off(values.len() - c.len()))
                        }
                        Node::Call {
                            kind,
                            state,
                            op,
                            at,
                            ..
                        } => {
                            let n = if state.is_some() { 3 } else { 2 };
                            let parts = values.split_off(values.len() - n);
                            objects::call(*kind, &parts[0], &parts[1], parts.get(2), (op, *at))
                        }
                        _ => continue,
                    };
                    if let PickleValue::Object(_) = &value {
                        add_bytes(&mut bytes, &value, self.limits)
                            .map_err(|(kind, max)| PickleError::Limit { kind, max, offset })?;
                    }
                    values.push(value);
                }
            }
        }
        Ok(values.pop().unwrap_or(PickleValue::None))
    }
}

/// A container whose items are all scalars, built at once rather than
/// through the task stack (a LogRecord's dict is one); `None` for any
/// other node. Counts elements and bytes in the order the task stack
/// would, so the same limit trips at the same item.
pub(super) fn flat<'a>(
    arena: &[Node<'a>],
    node: &Node<'a>,
    count: &mut Count<'_>,
    limits: &Limits,
) -> Result<Option<PickleValue<'a>>, (LimitKind, usize)> {
    let is_scalar = |i: &usize| matches!(arena[*i], Node::Scalar(_));
    let mut take = |i: usize| -> Result<PickleValue<'a>, (LimitKind, usize)> {
        *count.elements += 1;
        if *count.elements > limits.max_elements {
            return Err((LimitKind::Elements, limits.max_elements));
        }
        let Node::Scalar(v) = &arena[i] else {
            unreachable!("checked by is_scalar")
        };
        add_bytes(count.bytes, v, limits)?;
        // The item in its container (allocated to its length), and what
        // a clone of owned text allocates.
        *count.work = count
            .work
            .saturating_add(std::mem::size_of::<PickleValue<'a>>() + v.scalar_size());
        if *count.work > limits.max_work_bytes {
            return Err((LimitKind::Work, limits.max_work_bytes));
        }
        Ok(v.clone())
    };
    Ok(Some(match node {
        Node::Dict(pairs) if pairs.iter().all(|(k, v)| is_scalar(k) && is_scalar(v)) => {
            let mut out = Vec::with_capacity(pairs.len());
            for &(k, v) in pairs {
                let k = take(k)?;
                out.push((k, take(v)?));
            }
            PickleValue::Dict(out)
        }
        Node::List(c) | Node::Tuple(c) | Node::Set(c) | Node::FrozenSet(c)
            if c.iter().all(is_scalar) =>
        {
            let items = c.iter().map(|&i| take(i)).collect::<Result<Vec<_>, _>>()?;
            match node {
                Node::Tuple(_) => PickleValue::Tuple(items),
                _ => PickleValue::List(items),
            }
        }
        _ => return Ok(None),
    }))
}

/// What building the result has used so far: values, bytes of text and
/// working memory.
pub(super) struct Count<'c> {
    pub(super) elements: &'c mut usize,
    pub(super) bytes: &'c mut usize,
    pub(super) work: &'c mut usize,
}

/// Adds the bytes a value holds outside containers (text, bytes, big
/// integers, an object's rendered text) to `bytes`, checking the limit.
fn add_bytes(
    bytes: &mut usize,
    v: &PickleValue<'_>,
    limits: &Limits,
) -> Result<(), (LimitKind, usize)> {
    *bytes = bytes.saturating_add(v.scalar_size());
    if *bytes > limits.max_total_bytes {
        return Err((LimitKind::TotalBytes, limits.max_total_bytes));
    }
    Ok(())
}
