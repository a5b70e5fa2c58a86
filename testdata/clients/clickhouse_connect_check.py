"""TestAnalystClients (internal/chserver) runs this with the clients venv
(scripts/deps.sh clients) against clickhouse-embedded: clickhouse-connect with
its default settings (compress=True: lz4 request bodies, Accept-Encoding for
responses) creates a table, inserts rows, selects with bound {name:Type}
parameters and provokes an error; then it inserts and selects once with each
other compression setting. It prints one JSON object for the test to
check and exits 0 unless a step it did not expect to fail failed.

Connection: CLIENT_CHECK_HOST, _PORT, _USER, _PASSWORD, _DATABASE, _TABLE.
"""
import datetime
import json
import os
import re
import sys

import clickhouse_connect
from clickhouse_connect.driver.exceptions import DatabaseError

env = {k: os.environ["CLIENT_CHECK_" + k.upper()] for k in ("host", "port", "user", "password", "database", "table")}
client = clickhouse_connect.get_client(
    host=env["host"], port=int(env["port"]), username=env["user"], password=env["password"], database=env["database"]
)
table = env["table"]
client.command(f"CREATE TABLE {table} (id UInt32, model String, score Float64, at DateTime) ENGINE = MergeTree ORDER BY id")
at = datetime.datetime(2026, 11, 27, 10, 0, 0)
summary = client.insert(
    table,
    [[1, "churn", 0.25, at], [2, "fraud", 0.5, at], [3, "churn", 0.75, at]],
    column_names=["id", "model", "score", "at"],
)
result = client.query(
    f"SELECT id, model, score FROM {table} WHERE model = {{model:String}} AND score > {{min:Float64}} ORDER BY id",
    parameters={"model": "churn", "min": 0.1},
)
error_code, error = None, ""
try:
    client.query(f"SELECT * FROM {table}_does_not_exist")
except DatabaseError as e:
    error = str(e)
    m = re.search(r"Code: (\d+)\.", error)
    error_code = int(m.group(1)) if m else None
# Settings analysts change: each compression clickhouse-connect offers
# (brotli needs a package it does not install by default).
variants = {}
for comp in ("zstd", "gzip", "lz4", False):
    name = "compress=" + str(comp)
    c = clickhouse_connect.get_client(
        host=env["host"], port=int(env["port"]), username=env["user"], password=env["password"],
        database=env["database"], compress=comp,
    )
    c.insert(table, [[100, name, 1.0, at]], column_names=["id", "model", "score", "at"])
    variants[name] = c.query(f"SELECT count() FROM {table} WHERE model = {{m:String}}", parameters={"m": name}).result_rows[0][0]
    c.close()
json.dump(
    {
        "client": "clickhouse-connect " + clickhouse_connect.__version__,
        "compression": client.compression,
        "inserted": summary.written_rows,
        "rows": [list(r) for r in result.result_rows],
        "error_code": error_code,
        "error": error[:300],
        "variants": variants,
    },
    sys.stdout,
)
