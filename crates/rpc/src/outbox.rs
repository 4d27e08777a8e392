//! Records waiting to be written to a non-blocking socket: the server's replies and the
//! client's calls. They go out together in vectored writes, each of which may take only
//! part of what it is given; the outbox keeps the place, never copies a byte, and hands
//! each record back once it is written whole (to recycle its buffer).
use std::collections::VecDeque;
use std::io::{ErrorKind, IoSlice};

/// Something sent as up to three byte pieces, in order (a record mark and a body; a call's
/// header, its bulk data and the padding). Empty pieces are skipped.
pub trait Pieces {
    /// The pieces, in order.
    fn pieces(&self) -> [&[u8]; 3];

    /// Bytes on the wire.
    fn wire_len(&self) -> usize {
        self.pieces().iter().map(|p| p.len()).sum()
    }
}

/// Records waiting to be written, the first maybe in part.
#[derive(Debug)]
pub struct Outbox<T> {
    queue: VecDeque<T>,
    /// Bytes of the first record already written.
    sent: usize,
    /// Bytes queued and not yet written.
    bytes: usize,
    /// Most records given to one vectored write (three slices each at most; IOV_MAX is
    /// 1024).
    batch: usize,
}

impl<T> Default for Outbox<T> {
    fn default() -> Self {
        Self::with_batch(64)
    }
}

impl<T> Outbox<T> {
    /// An empty outbox writing at most `batch` records at a time.
    pub fn with_batch(batch: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            sent: 0,
            bytes: 0,
            batch: batch.clamp(1, 300),
        }
    }
}

impl<T: Pieces> Outbox<T> {
    /// Queues a record.
    pub fn push(&mut self, r: T) {
        self.bytes += r.wire_len();
        self.queue.push_back(r);
    }

    /// Records queued (the first maybe partly written).
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes not yet written.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Forgets everything queued (the connection is gone).
    pub fn clear(&mut self) {
        self.queue.clear();
        self.sent = 0;
        self.bytes = 0;
    }

    /// Writes what `write` takes without waiting (it is a non-blocking vectored write),
    /// handing each record written whole to `done`. `Ok(true)` once everything is written,
    /// `Ok(false)` when the socket is full (`write` said `WouldBlock`).
    pub fn flush(
        &mut self,
        mut write: impl FnMut(&[IoSlice<'_>]) -> std::io::Result<usize>,
        mut done: impl FnMut(T),
    ) -> std::io::Result<bool> {
        loop {
            self.advance(0, &mut done); // records of no bytes at the front
            if self.queue.is_empty() {
                return Ok(true);
            }
            let n = {
                let mut skip = self.sent;
                let mut iov = Vec::with_capacity(3 * self.queue.len().min(self.batch));
                for r in self.queue.iter().take(self.batch) {
                    for p in r.pieces() {
                        if skip >= p.len() {
                            skip -= p.len();
                            continue;
                        }
                        iov.push(IoSlice::new(&p[skip..]));
                        skip = 0;
                    }
                }
                match write(&iov) {
                    Ok(0) => return Err(ErrorKind::WriteZero.into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            self.advance(n, &mut done);
        }
    }

    /// Accounts for `n` bytes written from the front; hands each record written whole to
    /// `done`.
    fn advance(&mut self, mut n: usize, mut done: impl FnMut(T)) {
        self.bytes -= n.min(self.bytes);
        while n > 0 {
            let Some(first) = self.queue.front() else {
                break;
            };
            let left = first.wire_len() - self.sent;
            if n < left {
                self.sent += n;
                break;
            }
            n -= left;
            self.sent = 0;
            if let Some(r) = self.queue.pop_front() {
                done(r);
            }
        }
        // Records of no bytes at the front are written too.
        while self.sent == 0 && self.queue.front().is_some_and(|r| r.wire_len() == 0) {
            if let Some(r) = self.queue.pop_front() {
                done(r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    struct Rec(Vec<u8>, Vec<u8>);

    impl Pieces for Rec {
        fn pieces(&self) -> [&[u8]; 3] {
            [&self.0, &self.1, &[]]
        }
    }

    #[test]
    fn partial_writes_are_accounted_and_each_record_comes_back_once() {
        let mut o = Outbox::default();
        let mut done = Vec::new();
        o.push(Rec(vec![0; 4], vec![1; 10]));
        o.push(Rec(vec![0; 4], vec![]));
        o.push(Rec(vec![0; 4], vec![2; 5]));
        assert_eq!((o.len(), o.bytes()), (3, 27));
        o.advance(2, |r| done.push(r)); // half a record mark
        assert_eq!((o.len(), o.bytes(), o.sent), (3, 25, 2));
        o.advance(12, |r| done.push(r)); // the rest of the first record
        assert_eq!((o.len(), o.bytes(), o.sent), (2, 13, 0));
        o.advance(4 + 6, |r| done.push(r)); // the empty body and 6 bytes of the last
        assert_eq!((o.len(), o.bytes(), o.sent), (1, 3, 6));
        o.advance(3, |r| done.push(r));
        assert!(o.is_empty());
        assert_eq!(o.bytes(), 0);
        assert_eq!(
            done,
            vec![
                Rec(vec![0; 4], vec![1; 10]),
                Rec(vec![0; 4], vec![]),
                Rec(vec![0; 4], vec![2; 5])
            ],
            "each given back once, in order"
        );
    }

    /// A socket taking at most `step` bytes per write and `room` bytes in all before it is
    /// full.
    struct Sock {
        got: Vec<u8>,
        step: usize,
        room: usize,
        calls: usize,
    }

    impl Sock {
        fn write(&mut self, iov: &[IoSlice<'_>]) -> std::io::Result<usize> {
            self.calls += 1;
            if self.room == 0 {
                return Err(ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for s in iov {
                let take = s.len().min(self.step - n).min(self.room);
                self.got.extend_from_slice(&s[..take]);
                n += take;
                self.room -= take;
                if take < s.len() || n == self.step {
                    break;
                }
            }
            Ok(n)
        }
    }

    #[test]
    fn flush_sends_every_byte_in_order_through_short_writes_and_a_full_socket() {
        let recs: Vec<Rec> = (0..20u8)
            .map(|i| Rec(vec![i; 4], vec![i.wrapping_mul(7); usize::from(i) * 3]))
            .collect();
        let want: Vec<u8> = recs
            .iter()
            .flat_map(|r| [&r.0[..], &r.1[..]].concat())
            .collect();
        for (step, batch) in [(1, 1), (5, 3), (7, 64), (4096, 2)] {
            let mut o = Outbox::with_batch(batch);
            for r in &recs {
                o.push(Rec(r.0.clone(), r.1.clone()));
            }
            let mut s = Sock {
                got: Vec::new(),
                step,
                room: want.len() / 2,
                calls: 0,
            };
            let mut back = 0;
            assert!(!o.flush(|iov| s.write(iov), |_| back += 1).unwrap(), "full");
            assert_eq!(o.bytes(), want.len() - want.len() / 2);
            s.room = usize::MAX;
            assert!(o.flush(|iov| s.write(iov), |_| back += 1).unwrap());
            assert_eq!(s.got, want, "step {step}, batch {batch}");
            assert_eq!(back, recs.len());
            assert!(o.is_empty() && o.bytes() == 0);
        }
    }

    #[test]
    fn a_write_of_nothing_or_an_error_ends_the_flush_with_that_error() {
        let mut o = Outbox::default();
        o.push(Rec(vec![1; 4], vec![2; 4]));
        let e = o.flush(|_| Ok(0), |_| {}).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WriteZero);
        let e = o
            .flush(|_| Err(ErrorKind::BrokenPipe.into()), |_| {})
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenPipe);
        let mut interrupted = true;
        let ok = o.flush(
            |iov| {
                if std::mem::take(&mut interrupted) {
                    return Err(ErrorKind::Interrupted.into());
                }
                Ok(iov.iter().map(|s| s.len()).sum())
            },
            |_| {},
        );
        assert!(ok.unwrap(), "retried after EINTR");
    }
}
