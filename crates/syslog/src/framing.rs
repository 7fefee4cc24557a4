//! RFC 6587 syslog-over-TCP framing: octet counting (`LEN SP MSG`) and
//! non-transparent framing (LF-terminated), auto-detected per connection,
//! decoded incrementally over the chunks of a stream with a maximum frame
//! length.
//!
//! Feed bytes with [`FrameDecoder::push`], drain frames with
//! [`FrameDecoder::next_frame`] until it returns `None`, and call
//! [`FrameDecoder::finish`] at end of stream. Errors are per frame: after an
//! error the decoder resynchronises (skipping the oversized frame, or up to
//! the next LF) and carries on.

/// How frames are delimited on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FramingMode {
    /// RFC 6587 §3.4.1: `MSG-LEN SP SYSLOG-MSG`.
    OctetCounting,
    /// RFC 6587 §3.4.2: messages terminated by LF (a trailing CR is removed).
    NonTransparent,
}

/// A problem with one frame; decoding continues after it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A frame longer than the maximum; it is skipped.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLong {
        /// Declared (octet counting) or buffered (LF framing) length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// An octet-counting frame did not start with `NONZERO-DIGIT *DIGIT SP`;
    /// input is skipped up to the next LF.
    #[error("invalid octet count header")]
    InvalidOctetCount,
    /// The stream ended in the middle of an octet-counted frame.
    #[error("stream ended inside a frame ({buffered} bytes buffered)")]
    TruncatedAtEof {
        /// Bytes of the incomplete frame.
        buffered: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Discard {
    None,
    Bytes(usize),
    UntilLf,
}

/// Incremental RFC 6587 frame decoder for one TCP connection.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    mode: Option<FramingMode>,
    buf: Vec<u8>,
    pos: usize,
    max_frame_len: usize,
    discard: Discard,
}

/// Longest accepted MSG-LEN digit string.
const MAX_LEN_DIGITS: usize = 10;

impl FrameDecoder {
    /// A decoder that detects the framing from the first byte of the stream:
    /// a digit 1-9 means octet counting, anything else LF framing.
    pub fn new(max_frame_len: usize) -> Self {
        Self {
            mode: None,
            buf: Vec::new(),
            pos: 0,
            max_frame_len: max_frame_len.max(1),
            discard: Discard::None,
        }
    }

    /// A decoder with a fixed framing mode.
    pub fn with_mode(mode: FramingMode, max_frame_len: usize) -> Self {
        let mut d = Self::new(max_frame_len);
        d.mode = Some(mode);
        d
    }

    /// The framing mode, once known.
    pub fn mode(&self) -> Option<FramingMode> {
        self.mode
    }

    /// Bytes buffered but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Append a chunk read from the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete frame, an error for a bad frame, or `None` if more
    /// input is needed.
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, FramingError>> {
        loop {
            match self.discard {
                Discard::None => {}
                Discard::Bytes(n) => {
                    let k = n.min(self.buffered());
                    self.pos += k;
                    if k < n {
                        self.discard = Discard::Bytes(n - k);
                        self.compact_if_empty();
                        return None;
                    }
                    self.discard = Discard::None;
                }
                Discard::UntilLf => match self.find_lf() {
                    Some(lf) => {
                        self.pos = lf + 1;
                        self.discard = Discard::None;
                    }
                    None => {
                        self.pos = self.buf.len();
                        self.compact_if_empty();
                        return None;
                    }
                },
            }
            // Skip inter-frame line endings (tolerated in both modes).
            while matches!(self.buf.get(self.pos), Some(b'\n' | b'\r')) {
                self.pos += 1;
            }
            let &first = self.buf.get(self.pos)?;
            let mode = *self.mode.get_or_insert(if (b'1'..=b'9').contains(&first) {
                FramingMode::OctetCounting
            } else {
                FramingMode::NonTransparent
            });
            let r = match mode {
                FramingMode::OctetCounting => self.next_counted(),
                FramingMode::NonTransparent => self.next_lf(),
            };
            match r {
                Step::Frame(f) => return Some(Ok(f)),
                Step::Error(e) => return Some(Err(e)),
                Step::NeedMore => return None,
                Step::Again => continue,
            }
        }
    }

    /// Signal end of stream: returns a final unterminated LF frame, or an
    /// error if an octet-counted frame was cut off. Resets the buffer.
    pub fn finish(&mut self) -> Option<Result<Vec<u8>, FramingError>> {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        let trimmed_len = rest
            .iter()
            .rposition(|c| !matches!(c, b'\n' | b'\r'))
            .map_or(0, |p| p + 1);
        let out = if self.discard != Discard::None || trimmed_len == 0 {
            None
        } else {
            let data = &rest[..trimmed_len];
            match self.mode {
                Some(FramingMode::OctetCounting) => Some(Err(FramingError::TruncatedAtEof {
                    buffered: data.len(),
                })),
                _ if data.len() > self.max_frame_len => Some(Err(FramingError::FrameTooLong {
                    len: data.len(),
                    max: self.max_frame_len,
                })),
                _ => Some(Ok(data.to_vec())),
            }
        };
        self.buf.clear();
        self.pos = 0;
        self.discard = Discard::None;
        out
    }

    fn compact_if_empty(&mut self) {
        if self.pos >= self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    fn find_lf(&self) -> Option<usize> {
        self.buf[self.pos..]
            .iter()
            .position(|&c| c == b'\n')
            .map(|p| p + self.pos)
    }

    fn next_lf(&mut self) -> Step {
        match self.find_lf() {
            Some(lf) => {
                let mut end = lf;
                if end > self.pos && self.buf[end - 1] == b'\r' {
                    end -= 1;
                }
                let start = self.pos;
                self.pos = lf + 1;
                if end == start {
                    return Step::Again;
                }
                if end - start > self.max_frame_len {
                    return Step::Error(FramingError::FrameTooLong {
                        len: end - start,
                        max: self.max_frame_len,
                    });
                }
                Step::Frame(self.buf[start..end].to_vec())
            }
            None if self.buffered() > self.max_frame_len => {
                let len = self.buffered();
                self.pos = self.buf.len();
                self.compact_if_empty();
                self.discard = Discard::UntilLf;
                Step::Error(FramingError::FrameTooLong {
                    len,
                    max: self.max_frame_len,
                })
            }
            None => Step::NeedMore,
        }
    }

    fn next_counted(&mut self) -> Step {
        let avail = &self.buf[self.pos..];
        let n = avail.iter().take_while(|c| c.is_ascii_digit()).count();
        let bad = n == 0 || n > MAX_LEN_DIGITS || avail[0] == b'0';
        if bad {
            self.discard = Discard::UntilLf;
            return Step::Error(FramingError::InvalidOctetCount);
        }
        match avail.get(n) {
            None => return Step::NeedMore,
            Some(b' ') => {}
            Some(_) => {
                self.discard = Discard::UntilLf;
                return Step::Error(FramingError::InvalidOctetCount);
            }
        }
        let len = avail[..n].iter().fold(0usize, |acc, &c| {
            acc.saturating_mul(10).saturating_add(usize::from(c - b'0'))
        });
        if len > self.max_frame_len {
            self.pos += n + 1;
            self.discard = Discard::Bytes(len);
            return Step::Error(FramingError::FrameTooLong {
                len,
                max: self.max_frame_len,
            });
        }
        if avail.len() < n + 1 + len {
            return Step::NeedMore;
        }
        let start = self.pos + n + 1;
        self.pos = start + len;
        Step::Frame(self.buf[start..start + len].to_vec())
    }
}

enum Step {
    Frame(Vec<u8>),
    Error(FramingError),
    NeedMore,
    Again,
}
