//! Log lines in runc's two shapes. containerd decodes `--log` as a stream of JSON objects and
//! shows users the last one whose `level` is `error`, taking its text from `msg`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result};
use log::LevelFilter;

use crate::cli::LogFormat;

/// Formats one log line as runc (logrus) does for the given format.
pub fn format_line(format: LogFormat, level: log::Level, msg: &str, time: SystemTime) -> String {
    let level = level.as_str().to_ascii_lowercase();
    let time = humantime::format_rfc3339_seconds(time).to_string();
    match format {
        LogFormat::Json => {
            serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string()
        }
        LogFormat::Text => format!(
            "time={} level={} msg={}",
            serde_json::Value::String(time),
            level,
            serde_json::Value::String(msg.to_string())
        ),
    }
}

/// Sends log records to `log_file` (appending) or stderr, in `format`.
pub fn init(log_file: Option<&Path>, format: LogFormat, debug: bool) -> Result<()> {
    let target: Box<dyn Write + Send> = match log_file {
        Some(path) => Box::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("open log file {}", path.display()))?,
        ),
        None => Box::new(std::io::stderr()),
    };
    env_logger::Builder::new()
        .filter_level(if debug {
            LevelFilter::Debug
        } else {
            LevelFilter::Warn
        })
        .format(move |buf, record| {
            let line = format_line(
                format,
                record.level(),
                &record.args().to_string(),
                SystemTime::now(),
            );
            writeln!(buf, "{line}")
        })
        .target(env_logger::Target::Pipe(target))
        .try_init()
        .context("set up logging")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn json_line_has_runc_shape() {
        let t = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let line = format_line(LogFormat::Json, log::Level::Error, "boom \"x\"", t);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "boom \"x\"");
        assert_eq!(v["time"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn text_line_quotes_message() {
        let t = UNIX_EPOCH;
        let line = format_line(LogFormat::Text, log::Level::Warn, "a b", t);
        assert_eq!(line, "time=\"1970-01-01T00:00:00Z\" level=warn msg=\"a b\"");
    }
}
