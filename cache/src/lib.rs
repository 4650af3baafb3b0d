//! pullguard's RocksDB store. A [`Schema`] ties a column family to a key codec and a value
//! codec; [`Store::get`], [`Store::put`], [`Store::delete`] and [`Batch`] are the only entry
//! points, so no caller sees raw bytes or `rocksdb` types.
//!
//! # Durability
//! Writes name their [`Durability`]: trusted state (metadata versions, high-water marks, the
//! clock) is written `Synced` — the WAL is fsynced before the call returns, so a crash or
//! power cut cannot lose an acknowledged version and let it go backwards. Verdicts and
//! audit entries are written `Buffered`: losing one only costs a re-verification.
//! A [`Batch`] is applied atomically: all of its writes or none survive a crash.

#![forbid(unsafe_code)]

pub mod schemas;

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

pub use schemas::*;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("rocksdb: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("column family {0} is missing")]
    MissingColumnFamily(&'static str),
    #[error("cannot decode a {what} from column family {cf}: {reason}")]
    Decode {
        cf: &'static str,
        what: &'static str,
        reason: String,
    },
    #[error("cannot encode a key for column family {cf}: {reason}")]
    InvalidKey { cf: &'static str, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Encodes a key; order of encoded keys is the iteration order.
pub trait KeyCodec: Sized {
    fn encode_key(&self) -> Result<Vec<u8>, String>;
    fn decode_key(bytes: &[u8]) -> Result<Self, String>;
}

/// Encodes a value.
pub trait ValueCodec: Sized {
    fn encode_value(&self) -> Vec<u8>;
    fn decode_value(bytes: &[u8]) -> Result<Self, String>;
}

/// A column family with typed keys and values.
pub trait Schema {
    const CF: &'static str;
    type Key: KeyCodec;
    type Value: ValueCodec;
}

/// Whether a write must be on disk before the call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Synced,
    Buffered,
}

fn write_options(durability: Durability) -> WriteOptions {
    let mut opts = WriteOptions::default();
    opts.set_sync(durability == Durability::Synced);
    opts
}

/// The database. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Store {
    db: DB,
}

/// All memtables together, and each column family's.
const MEMTABLES_MAX: usize = 16 << 20;
const MEMTABLE: usize = 4 << 20;
/// The block cache shared by every column family.
const BLOCK_CACHE: usize = 8 << 20;

impl Store {
    /// Opens or creates the database at `path` with every column family of [`ALL_CFS`].
    pub fn open(path: &Path) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // Small values, read-mostly: keep the footprint modest on edge devices. Memory is
        // bounded by design, not by defaults: 16 MiB of memtables over all column families
        // (RocksDB's default is 64 MiB for each), and one 8 MiB block cache shared by all
        // that holds index and filter blocks too. A node with 100,000 cached verdicts stays
        // within these (see the load test).
        opts.set_max_open_files(256);
        opts.set_keep_log_file_num(4);
        opts.set_db_write_buffer_size(MEMTABLES_MAX);
        let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE);
        let cfs = ALL_CFS.iter().map(|name| {
            let mut table = rocksdb::BlockBasedOptions::default();
            table.set_block_cache(&cache);
            table.set_cache_index_and_filter_blocks(true);
            let mut cf = Options::default();
            cf.set_block_based_table_factory(&table);
            cf.set_write_buffer_size(MEMTABLE);
            cf.set_max_write_buffer_number(2);
            ColumnFamilyDescriptor::new(*name, cf)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        Ok(Store { db })
    }

    fn cf<S: Schema>(&self) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(S::CF)
            .ok_or(Error::MissingColumnFamily(S::CF))
    }

    pub fn get<S: Schema>(&self, key: &S::Key) -> Result<Option<S::Value>> {
        let cf = self.cf::<S>()?;
        let key = encode_key::<S>(key)?;
        match self.db.get_pinned_cf(cf, key)? {
            None => Ok(None),
            Some(bytes) => {
                S::Value::decode_value(&bytes)
                    .map(Some)
                    .map_err(|reason| Error::Decode {
                        cf: S::CF,
                        what: "value",
                        reason,
                    })
            }
        }
    }

    pub fn put<S: Schema>(
        &self,
        key: &S::Key,
        value: &S::Value,
        durability: Durability,
    ) -> Result<()> {
        let mut batch = self.batch();
        batch.put::<S>(key, value)?;
        self.write(batch, durability)
    }

    pub fn delete<S: Schema>(&self, key: &S::Key, durability: Durability) -> Result<()> {
        let mut batch = self.batch();
        batch.delete::<S>(key)?;
        self.write(batch, durability)
    }

    /// All entries of a column family in key order, starting at `from` (inclusive).
    pub fn scan<S: Schema>(&self, from: Option<&S::Key>) -> Result<Vec<(S::Key, S::Value)>> {
        let cf = self.cf::<S>()?;
        let start = from.map(encode_key::<S>).transpose()?;
        let mode = match &start {
            Some(k) => rocksdb::IteratorMode::From(k, rocksdb::Direction::Forward),
            None => rocksdb::IteratorMode::Start,
        };
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, mode) {
            let (k, v) = item?;
            let key = S::Key::decode_key(&k).map_err(|reason| Error::Decode {
                cf: S::CF,
                what: "key",
                reason,
            })?;
            let value = S::Value::decode_value(&v).map_err(|reason| Error::Decode {
                cf: S::CF,
                what: "value",
                reason,
            })?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// Visits the entries of a column family in key order from `from` (inclusive) while
    /// `f` returns true, without holding them all. An entry that does not decode is given
    /// to `f` as its error.
    pub fn for_each<S: Schema>(
        &self,
        from: Option<&S::Key>,
        mut f: impl FnMut(Result<(S::Key, S::Value)>) -> bool,
    ) -> Result<()> {
        let cf = self.cf::<S>()?;
        let start = from.map(encode_key::<S>).transpose()?;
        let mode = match &start {
            Some(k) => rocksdb::IteratorMode::From(k, rocksdb::Direction::Forward),
            None => rocksdb::IteratorMode::Start,
        };
        for item in self.db.iterator_cf(cf, mode) {
            let (k, v) = item?;
            let entry = S::Key::decode_key(&k)
                .map_err(|reason| Error::Decode {
                    cf: S::CF,
                    what: "key",
                    reason,
                })
                .and_then(|key| {
                    S::Value::decode_value(&v)
                        .map(|value| (key, value))
                        .map_err(|reason| Error::Decode {
                            cf: S::CF,
                            what: "value",
                            reason,
                        })
                });
            if !f(entry) {
                break;
            }
        }
        Ok(())
    }

    pub fn batch(&self) -> Batch<'_> {
        Batch {
            store: self,
            inner: WriteBatch::default(),
        }
    }

    /// Applies a batch atomically.
    pub fn write(&self, batch: Batch<'_>, durability: Durability) -> Result<()> {
        self.db.write_opt(batch.inner, &write_options(durability))?;
        Ok(())
    }
}

fn encode_key<S: Schema>(key: &S::Key) -> Result<Vec<u8>> {
    key.encode_key()
        .map_err(|reason| Error::InvalidKey { cf: S::CF, reason })
}

/// Writes applied together by [`Store::write`].
pub struct Batch<'a> {
    store: &'a Store,
    inner: WriteBatch,
}

impl Batch<'_> {
    pub fn put<S: Schema>(&mut self, key: &S::Key, value: &S::Value) -> Result<()> {
        let cf = self.store.cf::<S>()?;
        self.inner
            .put_cf(cf, encode_key::<S>(key)?, value.encode_value());
        Ok(())
    }

    pub fn delete<S: Schema>(&mut self, key: &S::Key) -> Result<()> {
        let cf = self.store.cf::<S>()?;
        self.inner.delete_cf(cf, encode_key::<S>(key)?);
        Ok(())
    }
}
