//! icsctl's one printer. Every result is one record: with `--json` it is
//! written as one JSON object per line, otherwise as text for people. Notes
//! for people (hints, where a file went) are text only. A closed pipe
//! (`icsctl … | head`) ends the command quietly instead of panicking.

use std::io::{self, Write};

/// Writes one result record as JSON or text.
pub fn emit(json: bool, record: serde_json::Value, text: impl AsRef<str>) -> io::Result<()> {
    if json {
        line(&record.to_string())
    } else {
        line(text.as_ref())
    }
}

/// Writes a note for people; JSON output carries none.
pub fn note(json: bool, text: impl AsRef<str>) -> io::Result<()> {
    if json { Ok(()) } else { line(text.as_ref()) }
}

/// Writes a record that is JSON in both modes (benchmark results).
pub fn emit_json(record: serde_json::Value) -> io::Result<()> {
    line(&record.to_string())
}

fn line(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()
}

/// Whether an error is stdout's reader having gone away.
pub fn is_closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
