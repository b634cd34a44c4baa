//! The owed-writes file: a fulfilled packet's store writes that could not be applied before its
//! Fulfill was relayed, kept on local disk so that neither a crash nor a shutdown loses them.
//!
//! A relayed Fulfill means the next hop has been paid and the sender will pay us: the source's
//! reservation must be committed and the destination credited, or the sweeper later refunds the
//! source of a packet that was paid for. While the store (Redis) is down those writes live in
//! memory ([`crate::pending`]); this file makes them durable. Before such a Fulfill is relayed its
//! owed writes are appended here and fsynced; at start-up, before the node serves packets, the
//! file is replayed; each write applied is marked done; once none is left the file is emptied.
//!
//! Replaying is safe any number of times: the commit is idempotent, and a credit is sent with
//! [`crate::store::Store::retry_credit`], which credits only if no earlier attempt did (the
//! packet's credit marker in Redis). A write is not applied any more once its first attempt is
//! older than `store.sweep_tombstone_retention_s`: past it the sweeper has forgotten a release
//! the commit must charge again, and the credit marker may be gone. Such a write is logged for
//! reconciliation instead.
//!
//! # Format
//! Text, one record per line, fields separated by one space (account ids never hold spaces):
//!
//! ```text
//! owe <commit|credit> <account> <amount> <packet id, 32 hex digits> <first attempt, ms since the epoch>
//! done <commit|credit> <packet id>
//! ```
//!
//! A write is identified by its kind and packet (a packet has at most one of each). A line is a
//! record only once its `\n` is written: a crash in the middle of an append leaves a last line
//! without one, which is ignored (its Fulfill was not relayed: the append had not returned). Any
//! other malformed line stops the start-up, naming the file and line: owed money is never
//! silently skipped. The file is locked (an exclusive advisory lock) for as long as a node uses
//! it, so two nodes can never share one.

use crate::account::AccountId;
use crate::store::PacketId;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the owed writes are kept and how many at most (config `store.owed_writes_path`,
/// `store.owed_writes_max`; only with Redis: the memory store cannot fail that way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedRules {
    pub path: PathBuf,
    /// Writes owed at once, at most (in memory and in the file). Past it a Fulfill is still
    /// relayed and its writes are logged at error level for reconciliation (see [`OwedFile::record`]).
    pub entries_max: usize,
}

/// Which of a fulfilled packet's two writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteKind {
    /// Commit the source's reserved debit.
    Commit,
    /// Credit the destination.
    Credit,
}

impl WriteKind {
    fn as_str(self) -> &'static str {
        match self {
            WriteKind::Commit => "commit",
            WriteKind::Credit => "credit",
        }
    }

    fn parse(text: &str) -> Option<WriteKind> {
        match text {
            "commit" => Some(WriteKind::Commit),
            "credit" => Some(WriteKind::Credit),
            _ => None,
        }
    }
}

/// One owed write, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedWrite {
    pub kind: WriteKind,
    pub account: AccountId,
    /// In the account's scale.
    pub amount: u64,
    pub packet: PacketId,
    /// When its first attempt was sent: the credit's retry and the age bound count from it.
    pub first_sent: SystemTime,
}

impl OwedWrite {
    fn line(&self) -> String {
        format!(
            "owe {} {} {} {} {}\n",
            self.kind.as_str(),
            self.account,
            self.amount,
            self.packet,
            millis(self.first_sent)
        )
    }

    /// How old its first attempt is now.
    pub fn age(&self) -> Duration {
        SystemTime::now().duration_since(self.first_sent).unwrap_or_default()
    }
}

/// Why the file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum OwedError {
    #[error("owed-writes file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "owed-writes file {path} is used by another process (give each node its own store.owed_writes_path)"
    )]
    Locked { path: PathBuf },
    #[error("owed-writes file {path}, line {line}: not a record ({text:?}); fix or move the file after reconciling it")]
    Malformed { path: PathBuf, line: usize, text: String },
    /// The bound is reached: nothing was recorded.
    #[error("{entries_max} writes are already owed (store.owed_writes_max)")]
    Full { entries_max: usize },
}

/// The open, locked file and what it holds.
#[derive(Debug)]
pub struct OwedFile {
    path: PathBuf,
    entries_max: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    file: File,
    /// Writes owed (recorded, not done).
    owed: usize,
    /// Lines in the file; when they reach twice what is owed plus [`COMPACT_SLACK_LINES`], the
    /// file is rewritten with the owed writes alone (done records are never needed again).
    lines: usize,
    /// The owed writes themselves, for compaction.
    records: HashMap<(WriteKind, PacketId), OwedWrite>,
}

/// Done records tolerated beyond what is owed before the file is rewritten.
const COMPACT_SLACK_LINES: usize = 4096;

impl OwedFile {
    /// Opens (creating it if needed) and locks the file, and returns what it still owes. The file
    /// is rewritten with those alone (a torn last line and done records go).
    pub fn open(rules: &OwedRules) -> Result<(OwedFile, Vec<OwedWrite>), OwedError> {
        let path = rules.path.clone();
        let io = |source| OwedError::Io { path: path.clone(), source };
        let file = OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(io)?;
        match lock_exclusively(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(OwedError::Locked { path }),
            Err(e) => return Err(io(e)),
        }
        let records = read(&path, &file)?;
        let mut owed: Vec<OwedWrite> = records.values().cloned().collect();
        owed.sort_by_key(|w| w.first_sent);
        let state = State { file, owed: records.len(), lines: 0, records };
        let owed_file =
            OwedFile { path: rules.path.clone(), entries_max: rules.entries_max, state: Mutex::new(state) };
        owed_file.compact(&mut owed_file.lock())?;
        Ok((owed_file, owed))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `writes` and fsyncs, all or none: when this returns Ok they survive a crash.
    /// `Full` (nothing recorded) when they would take the file past its bound.
    ///
    /// Past the bound the caller still relays the Fulfill, logging the writes for reconciliation:
    /// the next hop has been paid already, so withholding the Fulfill would certainly lose that
    /// money (the sender's payment to us), while relaying it only leaves our books to be
    /// corrected from the log. Blocking (disk I/O): call it off the async threads.
    pub fn record(&self, writes: &[OwedWrite]) -> Result<(), OwedError> {
        let mut state = self.lock();
        let fresh = writes.iter().filter(|w| !state.records.contains_key(&(w.kind, w.packet))).count();
        if state.owed + fresh > self.entries_max {
            return Err(OwedError::Full { entries_max: self.entries_max });
        }
        let text: String = writes.iter().map(OwedWrite::line).collect();
        self.append(&mut state, &text, true)?;
        for w in writes {
            if state.records.insert((w.kind, w.packet), w.clone()).is_none() {
                state.owed += 1;
            }
        }
        state.lines += writes.len();
        Ok(())
    }

    /// Marks writes as no longer owed (applied, or given up on and logged). Not fsynced: a done
    /// record lost in a crash only makes the next start replay a write, which changes nothing.
    /// When nothing is owed any more, the file is emptied. Blocking.
    pub fn done(&self, writes: &[(WriteKind, PacketId)]) -> Result<(), OwedError> {
        let mut state = self.lock();
        let known: Vec<_> = writes.iter().filter(|key| state.records.contains_key(key)).collect();
        if known.is_empty() {
            return Ok(());
        }
        for key in &known {
            state.records.remove(key);
            state.owed -= 1;
        }
        if state.owed == 0 || state.lines >= 2 * state.owed + COMPACT_SLACK_LINES {
            return self.compact(&mut state);
        }
        let text: String =
            known.iter().map(|(kind, packet)| format!("done {} {packet}\n", kind.as_str())).collect();
        self.append(&mut state, &text, false)?;
        state.lines += known.len();
        Ok(())
    }

    /// Writes owed now.
    pub fn owed(&self) -> usize {
        self.lock().owed
    }

    pub fn entries_max(&self) -> usize {
        self.entries_max
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding it happened between whole operations (each leaves the file
        // consistent, see `append`): the state is usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends whole lines; on failure the file is cut back to where it was, so that a partly
    /// written line never has a later record appended to it.
    fn append(&self, state: &mut State, text: &str, sync: bool) -> Result<(), OwedError> {
        let io = |source| OwedError::Io { path: self.path.clone(), source };
        let before = state.file.seek(SeekFrom::End(0)).map_err(io)?;
        let written = state.file.write_all(text.as_bytes()).and_then(|()| match sync {
            true => state.file.sync_data(),
            false => Ok(()),
        });
        if let Err(e) = written {
            let _ = state.file.set_len(before);
            return Err(io(e));
        }
        Ok(())
    }

    /// Rewrites the file with the owed writes alone: written to `<path>.tmp`, locked, fsynced,
    /// then renamed over the file (and the folder fsynced), so that at every moment the file at
    /// `path` holds every owed record and is locked by this node.
    fn compact(&self, state: &mut State) -> Result<(), OwedError> {
        let io = |source| OwedError::Io { path: self.path.clone(), source };
        let mut owed: Vec<&OwedWrite> = state.records.values().collect();
        owed.sort_by_key(|w| w.first_sent);
        let text: String = owed.into_iter().map(OwedWrite::line).collect();
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false)
            .open(&temporary)
            .map_err(io)?;
        lock_exclusively(&file).map_err(|_| OwedError::Locked { path: temporary.clone() })?;
        file.set_len(0).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_data().map_err(io)?;
        std::fs::rename(&temporary, &self.path).map_err(io)?;
        sync_folder(&self.path).map_err(io)?;
        state.file = file;
        state.lines = state.owed;
        Ok(())
    }
}

/// Takes the advisory lock that keeps a second node off the file (released when the file is
/// closed, including by the process's death). `WouldBlock` when another holds it. Std's own lock
/// (flock on Unix): no unsafe code, no libc.
fn lock_exclusively(file: &File) -> io::Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Makes a rename in the file's folder durable.
fn sync_folder(path: &Path) -> io::Result<()> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(folder)?.sync_all()
}

/// Reads every record; returns the writes owed (recorded and not done).
fn read(path: &Path, file: &File) -> Result<HashMap<(WriteKind, PacketId), OwedWrite>, OwedError> {
    let io = |source| OwedError::Io { path: path.to_path_buf(), source };
    let mut reader = BufReader::new(file.try_clone().map_err(io)?);
    reader.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut owed = HashMap::new();
    let mut line = String::new();
    let mut number = 0;
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(io)?;
        if n == 0 || !line.ends_with('\n') {
            // End of file, or a torn last line: an append a crash cut short.
            return Ok(owed);
        }
        number += 1;
        let malformed = || OwedError::Malformed {
            path: path.to_path_buf(),
            line: number,
            text: line.trim_end().to_string(),
        };
        let fields: Vec<&str> = line.trim_end_matches('\n').split(' ').collect();
        match fields.as_slice() {
            ["owe", kind, account, amount, packet, first_sent] => {
                let write = OwedWrite {
                    kind: WriteKind::parse(kind).ok_or_else(malformed)?,
                    account: AccountId::from(*account),
                    amount: amount.parse().map_err(|_| malformed())?,
                    packet: parse_packet(packet).ok_or_else(malformed)?,
                    first_sent: UNIX_EPOCH
                        + Duration::from_millis(first_sent.parse().map_err(|_| malformed())?),
                };
                owed.insert((write.kind, write.packet), write);
            }
            ["done", kind, packet] => {
                let kind = WriteKind::parse(kind).ok_or_else(malformed)?;
                owed.remove(&(kind, parse_packet(packet).ok_or_else(malformed)?));
            }
            _ => return Err(malformed()),
        }
    }
}

fn parse_packet(text: &str) -> Option<PacketId> {
    (text.len() == 32).then(|| u128::from_str_radix(text, 16).ok()).flatten().map(PacketId)
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Folder(PathBuf);
    impl Folder {
        fn new(name: &str) -> Folder {
            let path = std::env::temp_dir().join(format!("thitsax-owed-{name}-{}", PacketId::next()));
            std::fs::create_dir_all(&path).unwrap();
            Folder(path)
        }
        fn rules(&self, entries_max: usize) -> OwedRules {
            OwedRules { path: self.0.join("owed.log"), entries_max }
        }
    }
    impl Drop for Folder {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn write(kind: WriteKind, amount: u64) -> OwedWrite {
        OwedWrite {
            kind,
            account: "alice".into(),
            amount,
            packet: PacketId::next(),
            first_sent: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        }
    }

    #[test]
    fn recorded_writes_are_owed_after_a_reopen_until_done() {
        let folder = Folder::new("reopen");
        let (commit, credit) = (write(WriteKind::Commit, 5), write(WriteKind::Credit, 7));
        {
            let (file, owed) = OwedFile::open(&folder.rules(10)).unwrap();
            assert!(owed.is_empty());
            file.record(&[commit.clone(), credit.clone()]).unwrap();
        }
        let (file, mut owed) = OwedFile::open(&folder.rules(10)).unwrap();
        owed.sort_by_key(|w| w.kind == WriteKind::Credit);
        assert_eq!(owed, [commit.clone(), credit.clone()]);
        file.done(&[(WriteKind::Commit, commit.packet)]).unwrap();
        drop(file);
        let (file, owed) = OwedFile::open(&folder.rules(10)).unwrap();
        assert_eq!(owed, std::slice::from_ref(&credit));
        file.done(&[(WriteKind::Credit, credit.packet)]).unwrap();
        assert_eq!(std::fs::metadata(file.path()).unwrap().len(), 0, "emptied once nothing is owed");
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_a_malformed_one_stops_the_start() {
        let folder = Folder::new("torn");
        let rules = folder.rules(10);
        let kept = write(WriteKind::Commit, 5);
        let torn = write(WriteKind::Credit, 7).line();
        std::fs::write(&rules.path, format!("{}{}", kept.line(), &torn[..torn.len() - 4])).unwrap();
        let (file, owed) = OwedFile::open(&rules).unwrap();
        assert_eq!(owed, std::slice::from_ref(&kept), "the append a crash cut short is not a record");
        // The torn tail is gone: a record appended now is a line of its own.
        let next = write(WriteKind::Credit, 9);
        file.record(std::slice::from_ref(&next)).unwrap();
        drop(file);
        assert_eq!(OwedFile::open(&rules).unwrap().1.len(), 2);

        std::fs::write(
            &rules.path,
            format!("{}owe credit alice x {} 1\n{}", kept.line(), kept.packet, next.line()),
        )
        .unwrap();
        let refused = OwedFile::open(&rules).map(|_| ()).unwrap_err();
        assert!(matches!(refused, OwedError::Malformed { line: 2, .. }), "{refused}");
    }

    #[test]
    fn the_bound_counts_writes_owed_and_refuses_all_or_none() {
        let folder = Folder::new("bound");
        let (file, _) = OwedFile::open(&folder.rules(3)).unwrap();
        let first = write(WriteKind::Commit, 1);
        file.record(&[first.clone(), write(WriteKind::Credit, 1)]).unwrap();
        let refused = file.record(&[write(WriteKind::Commit, 2), write(WriteKind::Credit, 2)]);
        assert!(matches!(refused, Err(OwedError::Full { entries_max: 3 })), "{refused:?}");
        assert_eq!(file.owed(), 2, "nothing of a refused pair is recorded");
        file.done(&[(WriteKind::Commit, first.packet)]).unwrap();
        file.record(&[write(WriteKind::Commit, 3), write(WriteKind::Credit, 3)]).unwrap();
        assert_eq!(file.owed(), 3);
        drop(file);
        assert_eq!(OwedFile::open(&folder.rules(3)).unwrap().1.len(), 3);
    }

    #[test]
    fn done_records_are_compacted_away() {
        let folder = Folder::new("compact");
        let (file, _) = OwedFile::open(&folder.rules(100_000)).unwrap();
        let kept = write(WriteKind::Credit, 1);
        file.record(std::slice::from_ref(&kept)).unwrap();
        for _ in 0..COMPACT_SLACK_LINES + 16 {
            let w = write(WriteKind::Commit, 2);
            file.record(std::slice::from_ref(&w)).unwrap();
            file.done(&[(w.kind, w.packet)]).unwrap();
        }
        let lines = std::fs::read_to_string(file.path()).unwrap().lines().count();
        assert!(lines <= 2 + COMPACT_SLACK_LINES + 2, "{lines} lines");
        drop(file);
        assert_eq!(OwedFile::open(&folder.rules(100_000)).unwrap().1, [kept]);
    }

    #[test]
    fn a_second_node_cannot_open_the_same_file() {
        let folder = Folder::new("lock");
        let (_file, _) = OwedFile::open(&folder.rules(10)).unwrap();
        let second = OwedFile::open(&folder.rules(10)).map(|_| ()).unwrap_err();
        assert!(matches!(second, OwedError::Locked { .. }), "{second}");
    }
}
