//! The scan allocates nothing on the common path (no escapes in keys or the
//! model): counted with a wrapping global allocator, per thread so the test
//! harness's own allocations on other threads do not count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use shardgate::json::scan_top_level;

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn common_path_does_not_allocate() {
    let body = br#"{
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are terse.\nAnswer in one line."},
            {"role": "user", "content": [{"type": "text", "text": "caf\u00e9?"}]}
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters":
            {"type": "object", "properties": {"x": {"type": "array", "items": {"type": "number"}}}}}}],
        "temperature": 0.2, "max_tokens": 1e3, "stream": true,
        "stream_options": {"include_usage": true}
    }"#;
    let count = allocations_during(|| {
        let top = scan_top_level(body).unwrap();
        assert_eq!(top.model.unwrap().value, "gpt-4o-mini");
        assert_eq!(top.stream, Some(true));
    });
    assert_eq!(count, 0);
}

#[test]
fn escaped_model_is_the_allocating_exception() {
    let count = allocations_during(|| {
        let top = scan_top_level(br#"{"model":"gpt\u002d4o"}"#).unwrap();
        assert_eq!(top.model.unwrap().value, "gpt-4o");
    });
    assert!(count > 0);
}
