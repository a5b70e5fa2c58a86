// TestAnalystClients (internal/chserver) runs this with node against
// clickhouse-embedded: the official JavaScript client @clickhouse/client
// (installed under .deps/clients/node by scripts/deps.sh clients, found
// through NODE_PATH) with its default settings creates a table, inserts
// rows, selects with bound {name:Type} parameters and provokes an error;
// then it inserts and selects once with compression turned on.
// It prints one JSON object for the test to check.
//
// Connection: CLIENT_CHECK_HOST, _PORT, _USER, _PASSWORD, _DATABASE, _TABLE.
import { createRequire } from 'node:module'
import path from 'node:path'

// An ES module ignores NODE_PATH: resolve the client from it by hand.
const require = createRequire(path.join(process.env.NODE_PATH, 'noop.js'))
const { createClient, ClickHouseError } = require('@clickhouse/client')
const pkg = require('@clickhouse/client/package.json')

const env = {}
for (const k of ['host', 'port', 'user', 'password', 'database', 'table']) {
  env[k] = process.env['CLIENT_CHECK_' + k.toUpperCase()]
}
const client = createClient({
  url: `http://${env.host}:${env.port}`,
  username: env.user,
  password: env.password,
  database: env.database,
})
const table = env.table
await client.command({
  query: `CREATE TABLE ${table} (id UInt32, model String, score Float64, at DateTime) ENGINE = MergeTree ORDER BY id`,
})
const ins = await client.insert({
  table,
  values: [
    { id: 1, model: 'churn', score: 0.25, at: '2026-11-27 10:00:00' },
    { id: 2, model: 'fraud', score: 0.5, at: '2026-11-27 10:00:00' },
    { id: 3, model: 'churn', score: 0.75, at: '2026-11-27 10:00:00' },
  ],
  format: 'JSONEachRow',
})
const rs = await client.query({
  query: `SELECT id, model, score FROM ${table} WHERE model = {model:String} AND score > {min:Float64} ORDER BY id`,
  query_params: { model: 'churn', min: 0.1 },
  format: 'JSONCompactEachRow',
})
const rows = await rs.json()
let errorCode = null
let error = ''
try {
  await client.query({ query: `SELECT * FROM ${table}_does_not_exist`, format: 'JSONEachRow' })
} catch (e) {
  if (!(e instanceof ClickHouseError)) throw e
  errorCode = Number(e.code)
  error = e.message
}
await client.close()

// Settings analysts change: gzip both ways (the client's only codec on
// Node 20; zstd needs Node 22.15).
const variants = {}
for (const [name, compression] of [['gzip request and response', { request: true, response: true }]]) {
  const c = createClient({ url: `http://${env.host}:${env.port}`, username: env.user, password: env.password, database: env.database, compression })
  await c.insert({ table, values: [{ id: 100, model: name, score: 1, at: '2026-11-27 10:00:00' }], format: 'JSONEachRow' })
  const r = await c.query({ query: `SELECT count() AS n FROM ${table} WHERE model = {m:String}`, query_params: { m: name }, format: 'JSONEachRow' })
  variants[name] = Number((await r.json())[0].n)
  await c.close()
}
process.stdout.write(JSON.stringify({
  variants,
  client: '@clickhouse/client ' + pkg.version,
  inserted: Number(ins.summary?.written_rows ?? -1),
  rows,
  error_code: errorCode,
  error: error.slice(0, 300),
}))
