//! BER to DER normalization for inbound CMS.
//!
//! Streaming signers (OpenSSL with `-stream`, several mail clients) write
//! SignedData in BER: indefinite lengths, OCTET STRINGs split into
//! constructed chunks, unsorted SETs. The `der` crate reads DER only, and RFC
//! 5652 §5.4 computes signatures over the DER form of the signed attributes,
//! so the structure is rewritten to DER before it is decoded. DER input comes
//! out unchanged.

/// Deepest nesting accepted; real CMS stays far below it, and the limit
/// keeps hostile input from exhausting the stack.
const MAX_DEPTH: u32 = 64;

const TAG_OCTET_STRING: u8 = 0x04;
const TAG_CONSTRUCTED_OCTET_STRING: u8 = 0x24;
const TAG_SET: u8 = 0x31;

/// Why the input is not BER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BerError {
    /// The input ends inside an element.
    #[error("BER input is truncated")]
    Truncated,
    /// A length is malformed, too large, or indefinite on a primitive element.
    #[error("invalid BER length")]
    BadLength,
    /// Elements are nested deeper than carepost accepts.
    #[error("BER nesting too deep")]
    TooDeep,
    /// Bytes follow the single top-level element.
    #[error("trailing bytes after BER element")]
    TrailingData,
}

/// Rewrites one BER element (the whole input) as DER.
pub(crate) fn to_der(input: &[u8]) -> Result<Vec<u8>, BerError> {
    let mut reader = Reader { input, pos: 0 };
    let element = reader.element(0)?;
    if reader.pos != input.len() {
        return Err(BerError::TrailingData);
    }
    Ok(element.encode())
}

/// An element in normalized form: its identifier octets and its DER content.
struct Element {
    tag: Vec<u8>,
    content: Vec<u8>,
}

impl Element {
    fn encode(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.tag.len() + 6 + self.content.len());
        out.extend_from_slice(&self.tag);
        encode_length(self.content.len(), &mut out);
        out.extend_from_slice(&self.content);
        out
    }
}

fn encode_length(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, BerError> {
        let byte = *self.input.get(self.pos).ok_or(BerError::Truncated)?;
        self.pos += 1;
        Ok(byte)
    }

    fn at_end_of_contents(&self) -> bool {
        self.input.get(self.pos..self.pos + 2) == Some(&[0, 0])
    }

    fn element(&mut self, depth: u32) -> Result<Element, BerError> {
        if depth > MAX_DEPTH {
            return Err(BerError::TooDeep);
        }
        let first = self.byte()?;
        let mut tag = vec![first];
        if first & 0x1f == 0x1f {
            // High tag number form: continuation bytes have the top bit set.
            loop {
                let next = self.byte()?;
                tag.push(next);
                if next & 0x80 == 0 {
                    break;
                }
                if tag.len() > 6 {
                    return Err(BerError::BadLength);
                }
            }
        }
        let constructed = first & 0x20 != 0;
        let length = self.length()?;
        if !constructed {
            let len = length.ok_or(BerError::BadLength)?;
            let end = self.pos.checked_add(len).ok_or(BerError::BadLength)?;
            let content = self.input.get(self.pos..end).ok_or(BerError::Truncated)?.to_vec();
            self.pos = end;
            return Ok(Element { tag, content });
        }

        let mut children = Vec::new();
        match length {
            Some(len) => {
                let end = self.pos.checked_add(len).ok_or(BerError::BadLength)?;
                if end > self.input.len() {
                    return Err(BerError::Truncated);
                }
                let mut inner = Reader { input: &self.input[..end], pos: self.pos };
                while inner.pos < end {
                    children.push(inner.element(depth + 1)?);
                }
                self.pos = end;
            }
            None => {
                while !self.at_end_of_contents() {
                    if self.pos >= self.input.len() {
                        return Err(BerError::Truncated);
                    }
                    children.push(self.element(depth + 1)?);
                }
                self.pos += 2;
            }
        }

        if first == TAG_CONSTRUCTED_OCTET_STRING {
            // DER writes an OCTET STRING in one primitive piece.
            let content = children.into_iter().flat_map(|c| c.content).collect();
            return Ok(Element { tag: vec![TAG_OCTET_STRING], content });
        }
        let mut encoded: Vec<Vec<u8>> = children.into_iter().map(Element::encode).collect();
        if first == TAG_SET {
            // DER orders SET OF elements by their encodings (X.690 §11.6).
            encoded.sort();
        }
        Ok(Element { tag, content: encoded.concat() })
    }

    /// A definite length, or `None` for the indefinite form.
    fn length(&mut self) -> Result<Option<usize>, BerError> {
        let first = self.byte()?;
        if first < 0x80 {
            return Ok(Some(usize::from(first)));
        }
        if first == 0x80 {
            return Ok(None);
        }
        let count = usize::from(first & 0x7f);
        if count > 4 {
            return Err(BerError::BadLength);
        }
        let mut len = 0usize;
        for _ in 0..count {
            len = (len << 8) | usize::from(self.byte()?);
        }
        Ok(Some(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_passes_through_unchanged() {
        let der = [0x30, 0x06, 0x02, 0x01, 0x05, 0x04, 0x01, 0xaa];
        assert_eq!(to_der(&der).unwrap(), der);
    }

    #[test]
    fn indefinite_lengths_and_chunked_octet_strings_become_der() {
        // SEQUENCE (indefinite) { OCTET STRING (constructed, indefinite) { "ab", "c" } }
        let ber = [0x30, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0x00, 0x00, 0x00, 0x00];
        assert_eq!(to_der(&ber).unwrap(), [0x30, 0x05, 0x04, 0x03, b'a', b'b', b'c']);
    }

    #[test]
    fn set_elements_are_sorted() {
        let ber = [0x31, 0x06, 0x02, 0x01, 0x09, 0x02, 0x01, 0x03];
        assert_eq!(to_der(&ber).unwrap(), [0x31, 0x06, 0x02, 0x01, 0x03, 0x02, 0x01, 0x09]);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(to_der(&[0x30, 0x80, 0x02, 0x01]), Err(BerError::Truncated));
        assert_eq!(to_der(&[0x04, 0x80]), Err(BerError::BadLength));
        assert_eq!(to_der(&[0x02, 0x01, 0x01, 0x00]), Err(BerError::TrailingData));
        let deep: Vec<u8> = std::iter::repeat_n([0x30u8, 0x80], 200).flatten().collect();
        assert_eq!(to_der(&deep), Err(BerError::TooDeep));
    }
}
