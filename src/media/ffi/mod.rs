//! Every `unsafe` line of the media pipeline: the calls into FFmpeg, libavif
//! and libwebp, and the raw fields ffmpeg-next does not wrap. Each file
//! offers safe functions and types whose soundness does not depend on the
//! caller; every other file of `media/` denies `unsafe_code`.
//!
//! - [`avio`]: custom I/O over any `Read + Seek` source, and the demuxer and
//!   decoder allow-lists.
//! - [`index`]: the demuxer's index of a stream (which bytes a frame needs).
//! - [`ffmpeg`]: seeking, decoder settings, stream parameters and timestamp
//!   arithmetic that ffmpeg-next leaves to raw pointers.
//! - [`swscale`]: cropping, scaling and converting a decoded frame's pixels.
//! - [`avif`]: hand-written bindings to libavif 0.11 and its encoder; a test
//!   checks their layout against the installed header.
//! - [`webp`]: libwebp's still and animation encoders.

// `media` denies `unsafe_code`; this is the one place it is allowed, and
// each `unsafe` block says why it is sound in a `// SAFETY:` comment.
#![allow(unsafe_code)]

pub mod avif;
pub mod avio;
pub mod ffmpeg;
pub mod index;
pub mod swscale;
pub mod webp;
