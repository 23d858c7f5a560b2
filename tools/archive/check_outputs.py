"""Reads an encode-archive output folder the way users do and checks it is consistent.

    python check_outputs.py OUT_DIR MANIFEST.parquet

The Parquet manifest is read with pyarrow, pandas, polars and DuckDB (four independent
readers, except pandas which uses pyarrow); all must agree. Every shard's safetensors file is
read with numpy alone (the format is an 8-byte header length, a JSON header, raw little-endian
data), and every `ok` row's (shard, row) must point inside its `embeddings`. Prints a JSON
summary on stdout: rows, ok, unit_ids. Exits non-zero with a message on any inconsistency.
"""

import json
import os
import struct
import sys

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq


def load_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return out, header.get("__metadata__", {})


def main():
    out_dir, parquet = sys.argv[1], sys.argv[2]
    table = pq.read_table(parquet)
    df = pd.read_parquet(parquet)
    pl_df = pl.read_parquet(parquet)
    n_duck = duckdb.sql(f"select count(*) from read_parquet('{parquet}')").fetchall()[0][0]
    rows = table.num_rows
    assert len(df) == rows == pl_df.height == n_duck, (len(df), rows, pl_df.height, n_duck)
    assert str(table.schema.field("source").type).startswith("list<"), table.schema
    assert df["unit_id"].is_unique, "duplicate unit ids"
    assert list(pl_df["unit_id"]) == list(df["unit_id"]), "polars and pandas disagree"
    duck_ok = duckdb.sql(f"select count(*) from read_parquet('{parquet}') where status = 'ok'").fetchall()[0][0]
    ok = df[df["status"] == "ok"]
    assert duck_ok == len(ok)
    base = os.path.dirname(os.path.abspath(parquet))
    shards = {}
    for shard, row in zip(ok["shard"], ok["row"]):
        if shard not in shards:
            tensors, meta = load_safetensors(os.path.join(base, shard))
            shards[shard] = tensors["embeddings"]
            assert "weights_sha256" in meta
        emb = shards[shard]
        assert 0 <= int(row) < emb.shape[0], (shard, row, emb.shape)
        assert np.isfinite(emb[int(row)].astype(np.float32)).all()
    failed = df[df["status"] == "error"]
    assert failed["error"].notna().all() and failed["row"].isna().all()
    json.dump({"rows": rows, "ok": len(ok), "unit_ids": list(df["unit_id"])}, sys.stdout)


if __name__ == "__main__":
    main()
