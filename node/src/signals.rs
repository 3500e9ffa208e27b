//! One stop flag per process, set by Ctrl-C, SIGTERM or SIGHUP (what `timeout`, Docker and
//! systemd send). `main` installs the handler before a service opens anything, so a signal
//! that arrives during start-up stops it cleanly instead of killing it.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Installs the handler (once per process; later calls only return).
pub fn install() -> Result<()> {
    if STOP.get().is_some() {
        return Ok(());
    }
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    ctrlc::set_handler(move || f.store(true, std::sync::atomic::Ordering::SeqCst))
        .map_err(Error::Signal)?;
    let _ = STOP.set(flag);
    Ok(())
}

/// The process's stop flag (installing the handler if `main` has not).
pub fn stop_flag() -> Result<Arc<AtomicBool>> {
    install()?;
    Ok(STOP.get().expect("installed").clone())
}
