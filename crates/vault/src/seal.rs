//! The sealed format: AES-256-GCM in independent segments (the STREAM construction).
//!
//! ```text
//! "CPS1" | nonce prefix (8 bytes, random) | segment*
//! segment i = AES-256-GCM(key, nonce = prefix ‖ i as u32 BE with the top bit set on the
//!             last segment, aad, up to SEGMENT_SIZE bytes) → ciphertext ‖ 16-byte tag
//! ```
//!
//! Segments let a message body be sealed while it streams in from SMTP and opened without
//! holding two copies of a 25 MB message. The counter in the nonce stops reordering, the
//! last-segment bit stops truncation, and the associated data (tenant and object id) stops a
//! sealed value from being moved to another object. Every segment is sealed under a data key
//! used for one object only, so random nonce prefixes never repeat in practice.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::VaultError;

pub const SEGMENT_SIZE: usize = 64 * 1024;
const MAGIC: &[u8; 4] = b"CPS1";
const PREFIX_LEN: usize = 8;
const HEADER_LEN: usize = MAGIC.len() + PREFIX_LEN;
const TAG_LEN: usize = 16;
const LAST_FLAG: u32 = 1 << 31;

fn aead_key(key: &[u8; 32]) -> LessSafeKey {
    // AES_256_GCM takes exactly 32 bytes, which the type guarantees.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key is valid for AES-256-GCM"))
}

fn nonce(prefix: &[u8; PREFIX_LEN], counter: u32, last: bool) -> Result<Nonce, VaultError> {
    if counter & LAST_FLAG != 0 {
        // 2^31 segments of 64 KiB is 128 TiB: far beyond any object carepost seals.
        return Err(VaultError::Format);
    }
    let mut n = [0u8; 12];
    n[..PREFIX_LEN].copy_from_slice(prefix);
    let c = if last { counter | LAST_FLAG } else { counter };
    n[PREFIX_LEN..].copy_from_slice(&c.to_be_bytes());
    Ok(Nonce::assume_unique_for_key(n))
}

/// The length of the sealed form of `plaintext_len` bytes.
pub fn sealed_len(plaintext_len: usize) -> usize {
    let segments = plaintext_len.div_ceil(SEGMENT_SIZE).max(1);
    HEADER_LEN + plaintext_len + segments * TAG_LEN
}

/// Incremental sealing: push plaintext as it arrives, collect sealed bytes as they are ready.
pub struct Sealer {
    key: LessSafeKey,
    aad: Vec<u8>,
    prefix: [u8; PREFIX_LEN],
    counter: u32,
    pending: Vec<u8>,
    header_written: bool,
}

impl Sealer {
    pub fn new(key: &[u8; 32], aad: &[u8]) -> Result<Self, VaultError> {
        let mut prefix = [0u8; PREFIX_LEN];
        aws_lc_rs::rand::fill(&mut prefix).map_err(|_| VaultError::Random)?;
        Ok(Sealer {
            key: aead_key(key),
            aad: aad.to_vec(),
            prefix,
            counter: 0,
            pending: Vec::with_capacity(SEGMENT_SIZE + TAG_LEN),
            header_written: false,
        })
    }

    fn write_header(&mut self, out: &mut Vec<u8>) {
        if !self.header_written {
            out.extend_from_slice(MAGIC);
            out.extend_from_slice(&self.prefix);
            self.header_written = true;
        }
    }

    /// Seals every complete segment buffered so far into `out`. The last segment is held back
    /// until [`Sealer::finish`], because only then is it known to be the last.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), VaultError> {
        self.write_header(out);
        while !data.is_empty() {
            if self.pending.len() == SEGMENT_SIZE {
                self.seal_pending(false, out)?;
            }
            let room = SEGMENT_SIZE - self.pending.len();
            let take = room.min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    fn seal_pending(&mut self, last: bool, out: &mut Vec<u8>) -> Result<(), VaultError> {
        let n = nonce(&self.prefix, self.counter, last)?;
        self.key
            .seal_in_place_append_tag(n, Aad::from(&self.aad), &mut self.pending)
            .map_err(|_| VaultError::Integrity)?;
        out.extend_from_slice(&self.pending);
        self.pending.clear();
        self.counter += 1;
        Ok(())
    }

    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), VaultError> {
        self.write_header(out);
        self.seal_pending(true, out)
    }
}

/// Seals `plaintext` under a 32-byte data key; `aad` binds the result to its owner.
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
    let mut out = Vec::with_capacity(sealed_len(plaintext.len()));
    let mut sealer = Sealer::new(key, aad)?;
    sealer.push(plaintext, &mut out)?;
    sealer.finish(&mut out)?;
    Ok(out)
}

/// Opens what [`seal`] or [`Sealer`] produced. Any change to the bytes, a different key or a
/// different `aad` gives [`VaultError::Integrity`], never partial plaintext.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
    if sealed.len() < HEADER_LEN + TAG_LEN || &sealed[..MAGIC.len()] != MAGIC {
        return Err(VaultError::Format);
    }
    let mut prefix = [0u8; PREFIX_LEN];
    prefix.copy_from_slice(&sealed[MAGIC.len()..HEADER_LEN]);
    let key = aead_key(key);
    let mut body = &sealed[HEADER_LEN..];
    let mut out = Vec::with_capacity(body.len());
    let mut counter = 0u32;
    let mut segment = Vec::with_capacity(SEGMENT_SIZE + TAG_LEN);
    loop {
        let last = body.len() <= SEGMENT_SIZE + TAG_LEN;
        let take = if last { body.len() } else { SEGMENT_SIZE + TAG_LEN };
        if take < TAG_LEN {
            return Err(VaultError::Integrity);
        }
        segment.clear();
        segment.extend_from_slice(&body[..take]);
        let plain = key
            .open_in_place(nonce(&prefix, counter, last)?, Aad::from(aad), &mut segment)
            .map_err(|_| VaultError::Integrity)?;
        out.extend_from_slice(plain);
        body = &body[take..];
        counter += 1;
        if last {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: [u8; 32] = [7u8; 32];

    #[test]
    fn round_trips_at_segment_boundaries() {
        for len in [0, 1, SEGMENT_SIZE - 1, SEGMENT_SIZE, SEGMENT_SIZE + 1, 3 * SEGMENT_SIZE] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = seal(&KEY, b"t|o", &plain).unwrap();
            assert_eq!(sealed.len(), sealed_len(len), "len {len}");
            assert_eq!(open(&KEY, b"t|o", &sealed).unwrap(), plain, "len {len}");
        }
    }

    #[test]
    fn streaming_matches_one_shot_length_and_opens() {
        let plain = vec![42u8; 200_000];
        let mut sealer = Sealer::new(&KEY, b"aad").unwrap();
        let mut out = Vec::new();
        for chunk in plain.chunks(977) {
            sealer.push(chunk, &mut out).unwrap();
        }
        sealer.finish(&mut out).unwrap();
        assert_eq!(out.len(), sealed_len(plain.len()));
        assert_eq!(open(&KEY, b"aad", &out).unwrap(), plain);
    }

    #[test]
    fn truncation_reordering_and_wrong_context_fail() {
        let plain = vec![1u8; 2 * SEGMENT_SIZE + 10];
        let sealed = seal(&KEY, b"a", &plain).unwrap();
        // drop the last segment: the new last one lacks the last-segment bit
        let truncated = &sealed[..HEADER_LEN + 2 * (SEGMENT_SIZE + TAG_LEN)];
        assert!(matches!(open(&KEY, b"a", truncated), Err(VaultError::Integrity)));
        // swap the first two segments
        let mut swapped = sealed.clone();
        let seg = SEGMENT_SIZE + TAG_LEN;
        let (a, b) = (HEADER_LEN, HEADER_LEN + seg);
        let first = swapped[a..a + seg].to_vec();
        swapped.copy_within(b..b + seg, a);
        swapped[b..b + seg].copy_from_slice(&first);
        assert!(matches!(open(&KEY, b"a", &swapped), Err(VaultError::Integrity)));
        assert!(matches!(open(&KEY, b"b", &sealed), Err(VaultError::Integrity)));
        assert!(matches!(open(&[8u8; 32], b"a", &sealed), Err(VaultError::Integrity)));
        assert!(matches!(open(&KEY, b"a", b"junk"), Err(VaultError::Format)));
    }

    proptest! {
        #[test]
        fn any_flipped_bit_is_detected(plain in proptest::collection::vec(any::<u8>(), 0..300), pos in any::<usize>(), bit in 0u8..8) {
            let mut sealed = seal(&KEY, b"x", &plain).unwrap();
            let i = pos % sealed.len();
            sealed[i] ^= 1 << bit;
            prop_assert!(open(&KEY, b"x", &sealed).is_err());
        }

        #[test]
        fn opening_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = open(&KEY, b"x", &bytes);
        }
    }
}
