//! Where decided events go: the audit pipeline's queue.
//!
//! The event threads only see this trait, so they never wait on the log:
//! `push` either queues the record or counts a drop (the audit pipeline
//! turns counted drops into drop records). Losses the engine sees before
//! anything reaches the queue — the kernel's `FAN_Q_OVERFLOW`, which carries
//! no count, and events whose path could not be resolved, so could not be
//! evaluated — go through [`Sink::lost_upstream`].
use fltpolicy_core::record::EventData;

/// Why events were lost before they reached the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamLoss {
    /// fanotify's queue overflowed (`FAN_Q_OVERFLOW`): an unknown number of
    /// events was discarded by the kernel.
    KernelQueueOverflow,
    /// The path of one event the engine would have evaluated could not be
    /// resolved (e.g. its directory was removed before the event was read),
    /// so the policy could not be applied to it.
    UnresolvedPath,
    /// One event whose process could not be identified matched no rule
    /// while a recording rule tests the process: its verdict may have been
    /// different with the identity.
    Unattributed,
}

/// The audit pipeline as the event threads see it.
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// Queues one record. `false`: the queue was full and the record was
    /// counted as dropped. Never blocks. `thread_hint` distinguishes the
    /// producing threads (the queue keeps one ring per producer).
    fn push(&self, thread_hint: usize, record: &EventData<'_>) -> bool;
    /// Records a loss upstream of the queue.
    fn lost_upstream(&self, reason: UpstreamLoss);
    /// Records waiting to be written (the audit queue reports only empty
    /// or not: 0 or 1).
    fn depth(&self) -> u64;
    /// Records handed to the log writer so far.
    fn written(&self) -> u64;
    /// Records dropped so far (queue full and upstream losses).
    fn dropped(&self) -> u64;
    /// The log writer's health now: write failures and what they cost,
    /// log files lost while being written. Sinks without a writer report
    /// nothing.
    fn writer_health(&self) -> fltpolicy_audit::writer::WriterHealth {
        Default::default()
    }
}
