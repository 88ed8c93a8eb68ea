//! The netrt binary: the runtime an engine is told about. It adds the
//! hooks to bundles that ask for netrt and hands every call to the real runtime.

use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    let arguments: Vec<OsString> = std::env::args_os().skip(1).collect();
    if let Some(code) = netrt_wrapper::own::run(&arguments) {
        return code;
    }
    let invocation = netrt_wrapper::args::parse(&arguments);
    let Err(message) = netrt_wrapper::run(&invocation, &arguments);
    eprintln!("{message}");
    if let Some(log) = &invocation.log {
        netrt_wrapper::runlog::append(log, invocation.log_format.as_deref(), &message);
    }
    ExitCode::FAILURE
}
