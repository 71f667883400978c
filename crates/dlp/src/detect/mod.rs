//! Detectors: one pass over a text finds every identifier and health term.
//!
//! The text is split into words and numbers once ([`lexer`]); each word is looked up
//! once in the [`lexicon`]. That pass is the prefilter: only runs of numbers
//! ("clusters" such as `123-45-6789` or `(617) 555-0100`), month names, e-mail `@`s
//! and capitalized words become candidates, and only candidates meet the validators
//! ([`checks`], [`icd10`]) and the label that precedes them (`DOB:`, `Member ID`).

pub mod checks;
pub mod icd10;
pub mod lexer;
pub mod lexicon;

mod engine;

pub use engine::{Detection, HealthHit, PersonRole, Scratch, TextScan, scan_text, scan_text_into};
