//! Storage engines for the durable queue, compared on the queue's own workload: append events
//! (~560-byte JSON) in groups, fsync per group (`fsync: always`, group commit) or not at all
//! (`fsync: interval`), then read from the head and acknowledge (delete) in batches of 100.
//!
//! `cargo run --release -- <redb|fjall|seglog> <always|interval> [events] [group]`
//! One engine and workload per process, so that the peak RSS (VmHWM) is its own.

use redb::ReadableTable;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

fn payload(i: u64) -> Vec<u8> {
    let mut p = format!(
        r#"{{"id":"0190f3c2-7d1e-7a4b-9c1d-{i:012}","timestamp":"2026-11-27T10:00:00.123456789Z","action":"push","target":{{"mediaType":"application/octet-stream","digest":"sha256:{i:064x}","size":1234,"length":1234,"repository":"library/test","url":"http://127.0.0.1:5000/v2/library/test/blobs/sha256:{i:064x}"}},"request":{{"id":"0190f3c2-7d1e-7a4b-9c1d-{i:012}","addr":"127.0.0.1:40000","host":"127.0.0.1:5000","method":"PUT","useragent":"skopeo/1.9.3"}},"actor":{{}},"source":{{"addr":"host:5000","instanceID":"0190f3c2-7d1e-7a4b-9c1d-000000000000"}}}}"#
    )
    .into_bytes();
    p.truncate(700);
    p
}

trait Store {
    /// Appends `items` as one group; durable when `sync`.
    fn append(&mut self, first: u64, items: &[Vec<u8>], sync: bool);
    /// Reads up to `n` from the head and removes them; returns how many.
    fn take_ack(&mut self, n: usize) -> usize;
    fn sync(&mut self);
}

struct Redb {
    db: redb::Database,
    next_head: u64,
}
const T: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("q");

impl Store for Redb {
    fn append(&mut self, first: u64, items: &[Vec<u8>], sync: bool) {
        let mut tx = self.db.begin_write().unwrap();
        tx.set_durability(if sync { redb::Durability::Immediate } else { redb::Durability::None })
            .unwrap();
        {
            let mut t = tx.open_table(T).unwrap();
            for (k, v) in items.iter().enumerate() {
                t.insert(first + k as u64, v.as_slice()).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    fn take_ack(&mut self, n: usize) -> usize {
        let mut tx = self.db.begin_write().unwrap();
        tx.set_durability(redb::Durability::None).unwrap();
        let mut got = 0;
        {
            let mut t = tx.open_table(T).unwrap();
            let keys: Vec<u64> = t
                .range(self.next_head..)
                .unwrap()
                .take(n)
                .map(|r| {
                    let (k, v) = r.unwrap();
                    std::hint::black_box(v.value().len());
                    k.value()
                })
                .collect();
            for k in &keys {
                t.remove(k).unwrap();
                got += 1;
            }
            if let Some(k) = keys.last() {
                self.next_head = k + 1;
            }
        }
        tx.commit().unwrap();
        got
    }
    fn sync(&mut self) {
        let mut tx = self.db.begin_write().unwrap();
        tx.set_durability(redb::Durability::Immediate).unwrap();
        tx.commit().unwrap();
    }
}

struct Fjall {
    db: fjall::Database,
    ks: fjall::Keyspace,
    next_head: u64,
}

impl Store for Fjall {
    fn append(&mut self, first: u64, items: &[Vec<u8>], sync: bool) {
        let mut b = self.db.batch();
        if sync {
            b = b.durability(Some(fjall::PersistMode::SyncData));
        }
        for (k, v) in items.iter().enumerate() {
            b.insert(&self.ks, (first + k as u64).to_be_bytes(), v.as_slice());
        }
        b.commit().unwrap();
    }
    fn take_ack(&mut self, n: usize) -> usize {
        let keys: Vec<_> = self
            .ks
            .range(self.next_head.to_be_bytes()..)
            .take(n)
            .map(|g| {
                let (k, v) = g.into_inner().unwrap();
                std::hint::black_box(v.len());
                k
            })
            .collect();
        let mut b = self.db.batch();
        for k in &keys {
            b.remove(&self.ks, k.clone());
        }
        b.commit().unwrap();
        if let Some(k) = keys.last() {
            self.next_head = u64::from_be_bytes(k[..8].try_into().unwrap()) + 1;
        }
        keys.len()
    }
    fn sync(&mut self) {
        self.db.persist(fjall::PersistMode::SyncData).unwrap();
    }
}

/// The storage pattern of a segment log: CRC-framed records appended to a file, a cursor
/// (byte offset of the head) written on ack. One segment here; rotation does not change the cost.
struct SegLog {
    w: std::io::BufWriter<std::fs::File>,
    r: BufReader<std::fs::File>,
    cursor: std::fs::File,
    head: u64,
}

impl Store for SegLog {
    fn append(&mut self, _first: u64, items: &[Vec<u8>], sync: bool) {
        for v in items {
            self.w.write_all(&(v.len() as u32).to_le_bytes()).unwrap();
            self.w.write_all(&crc32fast::hash(v).to_le_bytes()).unwrap();
            self.w.write_all(v).unwrap();
        }
        if sync {
            self.w.flush().unwrap();
            self.w.get_ref().sync_data().unwrap();
        }
    }
    fn take_ack(&mut self, n: usize) -> usize {
        self.w.flush().unwrap();
        let mut got = 0;
        let mut buf = Vec::new();
        for _ in 0..n {
            let mut h = [0u8; 8];
            if self.r.read_exact(&mut h).is_err() {
                break;
            }
            let len = u32::from_le_bytes(h[..4].try_into().unwrap()) as usize;
            buf.resize(len, 0);
            self.r.read_exact(&mut buf).unwrap();
            assert_eq!(crc32fast::hash(&buf), u32::from_le_bytes(h[4..].try_into().unwrap()));
            self.head += 8 + len as u64;
            got += 1;
        }
        self.cursor.seek(SeekFrom::Start(0)).unwrap();
        self.cursor.write_all(&self.head.to_le_bytes()).unwrap();
        got
    }
    fn sync(&mut self) {
        self.w.flush().unwrap();
        self.w.get_ref().sync_data().unwrap();
    }
}

fn open(engine: &str, dir: &Path) -> Box<dyn Store> {
    match engine {
        "redb" => {
            let db = redb::Database::builder()
                .set_cache_size(16 << 20)
                .create(dir.join("q.redb"))
                .unwrap();
            Box::new(Redb { db, next_head: 0 })
        }
        "fjall" => {
            let db = fjall::Database::builder(dir.join("fjall"))
                .cache_size(16 << 20)
                .open()
                .unwrap();
            let ks = db.keyspace("q", fjall::KeyspaceCreateOptions::default).unwrap();
            Box::new(Fjall { db, ks, next_head: 0 })
        }
        "seglog" => {
            let path = dir.join("00000000.seg");
            let f = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
            let r = BufReader::with_capacity(64 << 10, std::fs::File::open(&path).unwrap());
            let cursor = std::fs::File::create(dir.join("cursor")).unwrap();
            Box::new(SegLog { w: std::io::BufWriter::with_capacity(64 << 10, f), r, cursor, head: 0 })
        }
        other => panic!("unknown engine {other}"),
    }
}

fn disk(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() { disk(&e.path()) } else { m.len() };
    }
    total
}

fn hwm_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let engine = args[0].as_str();
    let mode = args[1].as_str();
    let sync = mode == "always";
    let n: u64 = args.get(2).map_or(if sync { 5_000 } else { 200_000 }, |s| s.parse().unwrap());
    let group: u64 = args.get(3).map_or(if sync { 16 } else { 64 }, |s| s.parse().unwrap());
    let dir = tempfile::tempdir_in(std::env::var("EVAL_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    let mut store = open(engine, dir.path());
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let end = (i + group).min(n);
        let items: Vec<Vec<u8>> = (i..end).map(payload).collect();
        store.append(i, &items, sync);
        i = end;
    }
    store.sync();
    let append = t.elapsed();
    let filled = disk(dir.path());
    let t = Instant::now();
    let mut taken = 0;
    while taken < n as usize {
        let got = store.take_ack(100);
        assert!(got > 0, "stuck at {taken}");
        taken += got;
    }
    store.sync();
    let drain = t.elapsed();
    println!(
        "{engine:6} {mode:8} n={n:7} group={group:3}  append {:>9.0} ev/s ({:>7.0} groups/s)  drain {:>9.0} ev/s  disk {:>6.1} B/ev (after drain {:>8} B)  peak RSS {:>6} KiB",
        n as f64 / append.as_secs_f64(),
        (n.div_ceil(group)) as f64 / append.as_secs_f64(),
        n as f64 / drain.as_secs_f64(),
        filled as f64 / n as f64,
        disk(dir.path()),
        hwm_kib()
    );
}
