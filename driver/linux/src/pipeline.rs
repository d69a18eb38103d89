//! The whole Linux pipeline as `fltpolicy run` starts it: the audit flush
//! thread writing the log, the engine feeding it, and the control socket.
//!
//! Start order: log first (its file is created before any mark exists),
//! then the engine, then the control socket. Stop order is the reverse
//! data flow: the control socket closes, the engine drains the kernel's
//! queues into the audit queue, then the flush thread drains that queue
//! into the log and closes it. Every event that happened before the stop
//! request is therefore in the log when [`Pipeline::stop`] returns.
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fltpolicy_audit::writer::{AuditQueue, FileSink, FlushConfig, FlushThread};
use fltpolicy_core::record::{DropReason, EventData};

use crate::control::server::{ControlServer, ServerError};
use crate::engine::{Engine, EngineConfig, EngineError, EngineStatus};
use crate::sink::{Sink, UpstreamLoss};

/// [`Sink`] over the audit pipeline's producer handle.
#[derive(Debug)]
pub struct AuditSink {
    queue: AuditQueue,
    pushed: AtomicU64,
    upstream: AtomicU64,
}

impl AuditSink {
    pub fn new(queue: AuditQueue) -> AuditSink {
        AuditSink {
            queue,
            pushed: AtomicU64::new(0),
            upstream: AtomicU64::new(0),
        }
    }
}

impl Sink for AuditSink {
    fn push(&self, _thread_hint: usize, record: &EventData<'_>) -> bool {
        let ok = self.queue.push(record).is_ok();
        if ok {
            self.pushed.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    fn lost_upstream(&self, reason: UpstreamLoss) {
        match reason {
            // One overflow notice: at least one event was lost; the kernel
            // does not say how many. The drop record counts notices.
            UpstreamLoss::KernelQueueOverflow => self.queue.count_source_drop(1),
            // One event that could not be evaluated.
            UpstreamLoss::UnresolvedPath => {
                self.queue.count_upstream_drop(DropReason::Unresolved, 1)
            }
            UpstreamLoss::Unattributed => {
                self.queue.count_upstream_drop(DropReason::Unattributed, 1)
            }
        }
        self.upstream.fetch_add(1, Ordering::Relaxed);
    }

    fn depth(&self) -> u64 {
        u64::from(!self.queue.queue().is_empty())
    }

    fn written(&self) -> u64 {
        self.pushed.load(Ordering::Relaxed)
    }

    fn dropped(&self) -> u64 {
        self.queue.queue().drop_totals().iter().sum()
    }

    fn writer_health(&self) -> fltpolicy_audit::writer::WriterHealth {
        self.queue.writer_health()
    }
}

/// Why the pipeline did not start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot open the audit log {}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: fltpolicy_audit::writer::OpenLogError,
    },
    #[error("cannot start the audit writer: {0}")]
    Writer(#[from] fltpolicy_audit::writer::StartError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Control(#[from] ServerError),
}

/// What to run.
#[derive(Debug)]
pub struct PipelineConfig {
    pub image: Vec<u8>,
    pub log: PathBuf,
    pub control: Option<PathBuf>,
    pub watch: Vec<PathBuf>,
    /// Audit writer settings (queue size, notices); the default when `None`.
    pub flush: Option<FlushConfig>,
    /// How much of the log to keep (oldest files removed at rotation).
    pub retention: Option<fltpolicy_audit::writer::Retention>,
}

/// What a stopped pipeline reports.
#[derive(Debug)]
pub struct Summary {
    pub status: EngineStatus,
    /// Records (events, drops, end) the writer put in the log.
    pub writer: Result<fltpolicy_core::record::writer::WriterStats, String>,
}

/// A running pipeline.
#[derive(Debug)]
pub struct Pipeline {
    flush: Option<FlushThread<FileSink>>,
    engine: Option<Engine>,
    control: Option<ControlServer>,
    continuation: Option<fltpolicy_audit::writer::Continuation>,
    log_file: PathBuf,
}

impl Pipeline {
    pub fn start(cfg: PipelineConfig) -> Result<Pipeline, PipelineError> {
        // Refuse early, before creating a log file, when not privileged.
        crate::engine::check_capabilities()?;
        // An existing log is continued (a restarted service), not refused.
        let flush_cfg = cfg.flush.clone().unwrap_or_default();
        let (sink, continuation) =
            FileSink::open_log(&cfg.log, flush_cfg.key).map_err(|source| PipelineError::Log {
                path: cfg.log.clone(),
                source,
            })?;
        let sink = match cfg.retention {
            Some(r) => sink.retain(r),
            None => sink,
        };
        let log_file = sink.path().to_path_buf();
        let flush = FlushThread::start_at(sink, flush_cfg, continuation.as_ref())?;
        let audit = Arc::new(AuditSink::new(flush.producer()));
        let mut pipeline = Pipeline {
            flush: Some(flush),
            engine: None,
            control: None,
            continuation,
            log_file,
        };
        let engine = Engine::start(EngineConfig {
            image: cfg.image,
            watch: cfg.watch,
            sink: audit,
        })?;
        if let Some(path) = &cfg.control {
            pipeline.control = Some(ControlServer::start(path, engine.core())?);
        }
        pipeline.engine = Some(engine);
        Ok(pipeline)
    }

    /// Where the log went on from, when it already existed.
    pub fn continuation(&self) -> Option<&fltpolicy_audit::writer::Continuation> {
        self.continuation.as_ref()
    }

    /// The file the writer started in.
    pub fn log_file(&self) -> &std::path::Path {
        &self.log_file
    }

    /// The engine's status now.
    pub fn status(&self) -> Option<EngineStatus> {
        self.engine.as_ref().map(|e| e.core().status())
    }

    /// Stops everything in data-flow order and closes the log.
    pub fn stop(mut self) -> Summary {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Summary {
        if let Some(c) = self.control.take() {
            c.stop();
        }
        let status = self.engine.take().map(Engine::stop).unwrap_or_default();
        let writer = match self.flush.take() {
            Some(f) => match f.shutdown() {
                Ok((_, stats)) => Ok(stats),
                Err((_, _, e)) => Err(e.to_string()),
            },
            None => Err("writer not running".into()),
        };
        Summary { status, writer }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if self.flush.is_some() || self.engine.is_some() {
            let _ = self.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fltpolicy_audit::reader::RecordBody;
    use fltpolicy_audit::writer::rotated_files;
    use fltpolicy_audit::LogReader;

    /// The event threads report an event whose path they cannot resolve
    /// with `lost_upstream(UpstreamLoss::UnresolvedPath)` (notify.rs,
    /// perm.rs). Making a path reliably unresolvable end to end races the
    /// kernel (a directory must vanish between the event and its read), so
    /// this checks the same call on the real audit sink: each such event
    /// reaches the log as a drop record with reason `unresolved`, kept apart
    /// from kernel overflows.
    #[test]
    fn unresolved_paths_reach_the_log_as_drop_records() {
        let dir =
            std::env::temp_dir().join(format!("fltpolicy-linux-unresolved-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let base = dir.join("u.fplog");
        let flush =
            FlushThread::start(FileSink::create(&base).unwrap(), FlushConfig::default()).unwrap();
        let sink = AuditSink::new(flush.producer());
        sink.lost_upstream(UpstreamLoss::UnresolvedPath);
        sink.lost_upstream(UpstreamLoss::UnresolvedPath);
        sink.lost_upstream(UpstreamLoss::KernelQueueOverflow);
        sink.lost_upstream(UpstreamLoss::Unattributed);
        assert_eq!(sink.dropped(), 4);
        let (_, stats) = flush.shutdown().map_err(|(_, _, e)| e).unwrap();
        assert_eq!(stats.drops_recorded[DropReason::Unresolved as usize], 2);
        assert_eq!(stats.drops_recorded[DropReason::KernelOverflow as usize], 1);
        assert_eq!(stats.drops_recorded[DropReason::Unattributed as usize], 1);

        let mut per_reason = [0u64; DropReason::COUNT];
        for r in LogReader::open(&rotated_files(&base)).unwrap() {
            if let RecordBody::Dropped(d) = r.unwrap().body {
                per_reason[d.reason as usize] += d.count;
            }
        }
        let mut want = [0u64; DropReason::COUNT];
        want[DropReason::Unresolved as usize] = 2;
        want[DropReason::KernelOverflow as usize] = 1;
        want[DropReason::Unattributed as usize] = 1;
        assert_eq!(per_reason, want);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
