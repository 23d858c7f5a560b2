//! A small Parquet table writer over parquet2's page layer: nullable strings, integers and
//! doubles, and non-null lists of strings, written as PLAIN-encoded, uncompressed v1 data pages
//! in row groups of [`ROW_GROUP_ROWS`] rows. That subset is what every reader (pyarrow / pandas,
//! polars, Spark, DuckDB) accepts without optional codecs, and it is all a manifest needs.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use parquet2::compression::CompressionOptions;
use parquet2::encoding::hybrid_rle::encode_bool;
use parquet2::encoding::Encoding;
use parquet2::metadata::{Descriptor, KeyValue, SchemaDescriptor};
use parquet2::page::{DataPage, DataPageHeader, DataPageHeaderV1, Page};
use parquet2::schema::types::{
    GroupConvertedType, GroupLogicalType, ParquetType, PhysicalType, PrimitiveConvertedType,
    PrimitiveLogicalType,
};
use parquet2::schema::Repetition;
use parquet2::write::{Compressor, DynIter, DynStreamingIterator, FileWriter, Version, WriteOptions};

use crate::error::{io_error, ArchiveError};

/// Rows per row group: readers stream a row group at a time, so this bounds their memory on
/// manifests of millions of rows while keeping per-group overhead negligible.
pub const ROW_GROUP_ROWS: usize = 65_536;

/// One column's values, one entry per row.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// UTF-8 strings (logical type STRING), null where `None`.
    Str(Vec<Option<String>>),
    /// INT64, null where `None`.
    I64(Vec<Option<i64>>),
    /// DOUBLE, null where `None`.
    F64(Vec<Option<f64>>),
    /// A non-null LIST of non-null strings (3-level list, as the Parquet spec's LogicalTypes.md
    /// recommends, so pyarrow reads it as `list<string>`); an empty list is allowed.
    StrList(Vec<Vec<String>>),
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::Str(v) => v.len(),
            Values::I64(v) => v.len(),
            Values::F64(v) => v.len(),
            Values::StrList(v) => v.len(),
        }
    }

    fn slice(&self, range: std::ops::Range<usize>) -> Values {
        match self {
            Values::Str(v) => Values::Str(v[range].to_vec()),
            Values::I64(v) => Values::I64(v[range].to_vec()),
            Values::F64(v) => Values::F64(v[range].to_vec()),
            Values::StrList(v) => Values::StrList(v[range].to_vec()),
        }
    }
}

/// A named column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Values,
}

impl Column {
    pub fn new(name: &str, values: Values) -> Column {
        Column {
            name: name.to_string(),
            values,
        }
    }
}

fn parquet_type(c: &Column) -> Result<ParquetType, parquet2::error::Error> {
    let name = c.name.clone();
    match &c.values {
        Values::Str(_) => ParquetType::try_from_primitive(
            name,
            PhysicalType::ByteArray,
            Repetition::Optional,
            Some(PrimitiveConvertedType::Utf8),
            Some(PrimitiveLogicalType::String),
            None,
        ),
        Values::I64(_) => Ok(ParquetType::from_physical(name, PhysicalType::Int64)),
        Values::F64(_) => Ok(ParquetType::from_physical(name, PhysicalType::Double)),
        Values::StrList(_) => {
            let element = ParquetType::try_from_primitive(
                "element".into(),
                PhysicalType::ByteArray,
                Repetition::Required,
                Some(PrimitiveConvertedType::Utf8),
                Some(PrimitiveLogicalType::String),
                None,
            )?;
            let list = ParquetType::from_group(
                "list".into(),
                Repetition::Repeated,
                None,
                None,
                vec![element],
                None,
            );
            Ok(ParquetType::from_group(
                name,
                Repetition::Required,
                Some(GroupConvertedType::List),
                Some(GroupLogicalType::List),
                vec![list],
                None,
            ))
        }
    }
}

/// Levels (bit width 1) in the v1 page layout: a 4-byte little-endian length, then the
/// RLE / bit-packed hybrid runs (Parquet format, Encodings.md).
fn push_levels(buffer: &mut Vec<u8>, levels: Vec<bool>) -> std::io::Result<()> {
    let start = buffer.len();
    buffer.extend_from_slice(&[0; 4]);
    encode_bool(buffer, levels.into_iter())?;
    let length = (buffer.len() - start - 4) as u32;
    buffer[start..start + 4].copy_from_slice(&length.to_le_bytes());
    Ok(())
}

fn plain_bytes(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// One data page holding a row group's values of one column.
fn page(values: &Values, descriptor: &Descriptor) -> std::io::Result<Page> {
    let rows = values.len();
    let mut buffer = Vec::new();
    let mut payload = Vec::new();
    let num_values = match values {
        Values::Str(v) => {
            push_levels(&mut buffer, v.iter().map(Option::is_some).collect())?;
            v.iter().flatten().for_each(|s| plain_bytes(&mut payload, s));
            rows
        }
        Values::I64(v) => {
            push_levels(&mut buffer, v.iter().map(Option::is_some).collect())?;
            v.iter().flatten().for_each(|x| payload.extend_from_slice(&x.to_le_bytes()));
            rows
        }
        Values::F64(v) => {
            push_levels(&mut buffer, v.iter().map(Option::is_some).collect())?;
            v.iter().flatten().for_each(|x| payload.extend_from_slice(&x.to_le_bytes()));
            rows
        }
        Values::StrList(v) => {
            // Repetition level 0 starts a row, 1 continues its list; definition level 1 is an
            // element, 0 an empty list (max levels 1 and 1 for a required list of required
            // elements).
            let mut rep = Vec::new();
            let mut def = Vec::new();
            for list in v {
                if list.is_empty() {
                    rep.push(false);
                    def.push(false);
                }
                for (i, s) in list.iter().enumerate() {
                    rep.push(i > 0);
                    def.push(true);
                    plain_bytes(&mut payload, s);
                }
            }
            let n = rep.len();
            push_levels(&mut buffer, rep)?;
            push_levels(&mut buffer, def)?;
            n
        }
    };
    buffer.extend_from_slice(&payload);
    let header = DataPageHeaderV1 {
        num_values: num_values as i32,
        encoding: Encoding::Plain.into(),
        definition_level_encoding: Encoding::Rle.into(),
        repetition_level_encoding: Encoding::Rle.into(),
        statistics: None,
    };
    Ok(Page::Data(DataPage::new(
        DataPageHeader::V1(header),
        buffer,
        descriptor.clone(),
        Some(rows),
    )))
}

/// Writes `columns` (all of one length) to `path` through a temporary file renamed into place,
/// with `metadata` as the file's key-value metadata.
pub fn write_table(
    path: &Path,
    columns: &[Column],
    metadata: &[(&str, String)],
) -> Result<(), ArchiveError> {
    let rows = columns.first().map_or(0, |c| c.values.len());
    if let Some(c) = columns.iter().find(|c| c.values.len() != rows) {
        return Err(ArchiveError::Internal(format!(
            "parquet column {} has {} rows, the first column {rows}",
            c.name,
            c.values.len()
        )));
    }
    let parquet_err = |e: parquet2::error::Error| ArchiveError::Parquet {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let fields = columns
        .iter()
        .map(parquet_type)
        .collect::<Result<Vec<_>, _>>()
        .map_err(parquet_err)?;
    let schema = SchemaDescriptor::new("manifest".into(), fields);
    let options = WriteOptions {
        write_statistics: false,
        version: Version::V1,
    };
    let tmp = crate::shards::partial_path(path);
    let file = File::create(&tmp).map_err(|e| io_error(&tmp, e))?;
    let mut writer = FileWriter::new(std::io::BufWriter::new(file), schema, options, None);
    let written = (|| -> Result<(), ArchiveError> {
        let leaves = writer.schema().columns().to_vec();
        let mut start = 0;
        // A table of zero rows still gets one (empty) row group, so readers see the schema.
        loop {
            let end = (start + ROW_GROUP_ROWS).min(rows);
            let pages: Vec<Result<DynStreamingIterator<'_, _, parquet2::error::Error>, parquet2::error::Error>> = columns
                .iter()
                .zip(&leaves)
                .map(|(c, leaf)| {
                    let page = page(&c.values.slice(start..end), &leaf.descriptor)
                        .map_err(|e| parquet2::error::Error::OutOfSpec(e.to_string()))?;
                    Ok(DynStreamingIterator::new(Compressor::new_from_vec(
                        DynIter::new(std::iter::once(Ok(page))),
                        CompressionOptions::Uncompressed,
                        vec![],
                    )))
                })
                .collect();
            writer
                .write(DynIter::new(pages.into_iter()))
                .map_err(parquet_err)?;
            start = end;
            if start >= rows {
                break;
            }
        }
        let kv = metadata
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.to_string(),
                value: Some(v.clone()),
            })
            .collect();
        writer.end(Some(kv)).map_err(parquet_err)?;
        Ok(())
    })();
    let finished = written.and_then(|()| {
        let mut inner = writer.into_inner();
        inner.flush().map_err(|e| io_error(&tmp, e))?;
        inner
            .into_inner()
            .map_err(|e| io_error(&tmp, e.into_error()))?
            .sync_all()
            .map_err(|e| io_error(&tmp, e))
    });
    if let Err(e) = finished {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error(path, e)
    })
}
