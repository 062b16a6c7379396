//! The functions the page's worker calls (C ABI, no generated glue).
//!
//! Protocol (`web/static/worker.js` is the other side):
//! 1. `lab_alloc(n)` returns a buffer of n bytes in the module's memory;
//!    the worker writes the settings text (see [`LabConfig::parse`]) there;
//! 2. `lab_train(ptr, n)` takes that buffer back (frees it), runs
//!    [`train`], and while it runs calls the imported `env.emit(tag, ptr,
//!    len)` for every message of [`Tag`]; the bytes are valid only during
//!    that call. It returns 0 on success, 1 on failure (a [`Tag::Error`]
//!    says why);
//! 3. after a run, `lab_log_det(x, y)` emits [`Tag::LogDet`] for the
//!    trained model at (x, y), and `lab_checkpoint_ptr()` /
//!    `lab_checkpoint_len()` expose its checkpoint bytes.
//!
//! A panic inside the library is reported as [`Tag::Error`] with its
//! message before the module traps.

use crate::{log_det_at, train, LabConfig, Sink, Tag};
use std::cell::RefCell;

#[link(wasm_import_module = "env")]
extern "C" {
    /// The page's message handler.
    fn emit(tag: u32, ptr: *const u8, len: usize);
}

/// Sends messages to the imported `env.emit`.
struct PageSink;

impl Sink for PageSink {
    fn emit(&mut self, tag: Tag, bytes: &[u8]) {
        // SAFETY: `emit` only reads `len` bytes at `ptr` during the call.
        unsafe { emit(tag as u32, bytes.as_ptr(), bytes.len()) }
    }
}

thread_local! {
    /// The checkpoint of the last successful run.
    static LAST: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` bytes the caller fills and hands to [`lab_train`].
#[no_mangle]
pub extern "C" fn lab_alloc(len: usize) -> *mut u8 {
    let mut buffer = std::mem::ManuallyDrop::new(Vec::<u8>::with_capacity(len));
    buffer.as_mut_ptr()
}

/// Runs the experiment whose settings text is at `ptr` (`len` bytes, from
/// [`lab_alloc`], freed here). 0: done; 1: failed (see the error message).
///
/// # Safety
/// `ptr` must come from `lab_alloc(len)` and hold `len` initialised bytes.
#[no_mangle]
pub unsafe extern "C" fn lab_train(ptr: *mut u8, len: usize) -> i32 {
    std::panic::set_hook(Box::new(|info| {
        PageSink.emit(
            Tag::Error,
            format!("the library panicked: {info}").as_bytes(),
        )
    }));
    // SAFETY: the caller's promise above.
    let text = unsafe { Vec::from_raw_parts(ptr, len, len) };
    let config = match std::str::from_utf8(&text)
        .map_err(|e| e.to_string())
        .and_then(LabConfig::parse)
    {
        Ok(config) => config,
        Err(e) => {
            PageSink.emit(Tag::Error, e.as_bytes());
            return 1;
        }
    };
    match train(&config, &mut PageSink) {
        Ok(outcome) => {
            LAST.with(|last| *last.borrow_mut() = outcome.checkpoint);
            0
        }
        Err(_) => 1,
    }
}

/// Emits [`Tag::LogDet`] for the last trained model at (x, y); 1 (with
/// [`Tag::Error`]) if there is none.
#[no_mangle]
pub extern "C" fn lab_log_det(x: f64, y: f64) -> i32 {
    let answer = LAST.with(|last| {
        let last = last.borrow();
        if last.is_empty() {
            Err("train a model first".to_string())
        } else {
            log_det_at(&last, [x, y])
        }
    });
    match answer {
        Ok(check) => {
            PageSink.emit(Tag::LogDet, check.to_json().as_bytes());
            0
        }
        Err(e) => {
            PageSink.emit(Tag::Error, e.as_bytes());
            1
        }
    }
}

/// The last checkpoint's address in memory.
#[no_mangle]
pub extern "C" fn lab_checkpoint_ptr() -> *const u8 {
    LAST.with(|last| last.borrow().as_ptr())
}

/// The last checkpoint's length in bytes (0 before a run).
#[no_mangle]
pub extern "C" fn lab_checkpoint_len() -> usize {
    LAST.with(|last| last.borrow().len())
}
