//! Arbitrary upstream bytes, split at arbitrary points, through the whole
//! upstream response path as the gateway reads it (head parser, framing,
//! chunked decoder, usage scanner, cut placement, SSE scanner, stream
//! translators): see `upstream_pipeline.rs` for what is asserted.
//!
//! Input: the first byte picks the mode (pass-through or a translation,
//! client dialect, small limits); the next four are two cut points; the
//! rest is what the upstream sends.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "upstream_pipeline.rs"]
mod upstream_pipeline;

use upstream_pipeline::{run_split, Mode};

fuzz_target!(|data: &[u8]| {
    let [mode, a0, a1, b0, b1, input @ ..] = data else {
        return;
    };
    let cuts = [
        usize::from(u16::from_le_bytes([*a0, *a1])),
        usize::from(u16::from_le_bytes([*b0, *b1])),
    ];
    run_split(&Mode::from_byte(*mode), input, &cuts);
});
