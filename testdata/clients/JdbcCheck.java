// TestAnalystClients (internal/chserver) runs this with `java -cp
// '.deps/clients/jdbc/*' JdbcCheck.java` (a single-file source launch)
// against clickhouse-embedded: the ClickHouse JDBC driver (clickhouse-jdbc
// 0.10.0, what DBeaver and other JDBC tools load) with its default
// settings creates a table, inserts rows in a batch, selects with bound
// parameters (JDBC's `?`, which the driver binds, and ClickHouse's
// {name:Type} through the driver's client) and provokes an error;
// then it inserts and selects once with each compression property.
// It prints one JSON object for the test to check.
//
// Connection: CLIENT_CHECK_HOST, _PORT, _USER, _PASSWORD, _DATABASE, _TABLE.

import com.clickhouse.client.api.query.GenericRecord;
import com.clickhouse.jdbc.ConnectionImpl;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

public class JdbcCheck {
    static String env(String k) {
        String v = System.getenv("CLIENT_CHECK_" + k);
        return v == null ? "" : v;
    }

    static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n").replace("\r", "") + "\"";
    }

    // Settings analysts change: client-v2's compression properties, each
    // a fresh connection that inserts one row and counts it back.
    static String variants(String url, String table, Timestamp at) throws SQLException {
        // client-v2's names: compress = COMPRESS_SERVER_RESPONSE (on by
        // default), decompress = COMPRESS_CLIENT_REQUEST, and
        // client.use_http_compression moves both to HTTP Content-Encoding.
        String[][] settings = {
            {"decompress", "true"},
            {"client.use_http_compression", "true"},
            {"compress", "false"},
        };
        List<String> out = new ArrayList<>();
        for (String[] kv : settings) {
            String name = kv[0] + "=" + kv[1];
            Properties props = new Properties();
            props.setProperty("user", env("USER"));
            props.setProperty("password", env("PASSWORD"));
            props.setProperty(kv[0], kv[1]);
            if (kv[0].equals("client.use_http_compression")) {
                props.setProperty("decompress", "true");
            }
            try (Connection conn = DriverManager.getConnection(url, props)) {
                try (PreparedStatement ps = conn.prepareStatement(
                        "INSERT INTO " + table + " (id, model, score, at) VALUES (?, ?, ?, ?)")) {
                    ps.setInt(1, 100);
                    ps.setString(2, name);
                    ps.setDouble(3, 1.0);
                    ps.setTimestamp(4, at);
                    ps.executeUpdate();
                }
                try (PreparedStatement ps = conn.prepareStatement("SELECT count() FROM " + table + " WHERE model = ?")) {
                    ps.setString(1, name);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        out.add(quote(name) + ":" + rs.getLong(1));
                    }
                }
            }
        }
        return "{" + String.join(",", out) + "}";
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:clickhouse://" + env("HOST") + ":" + env("PORT") + "/" + env("DATABASE");
        String table = env("TABLE");
        Properties props = new Properties();
        props.setProperty("user", env("USER"));
        props.setProperty("password", env("PASSWORD"));
        try (Connection conn = DriverManager.getConnection(url, props)) {
            String version = conn.getMetaData().getDriverName() + " " + conn.getMetaData().getDriverVersion();
            try (Statement st = conn.createStatement()) {
                st.execute("CREATE TABLE " + table
                        + " (id UInt32, model String, score Float64, at DateTime) ENGINE = MergeTree ORDER BY id");
            }
            Timestamp at = Timestamp.valueOf("2026-11-27 10:00:00");
            int inserted = 0;
            try (PreparedStatement ps = conn.prepareStatement(
                    "INSERT INTO " + table + " (id, model, score, at) VALUES (?, ?, ?, ?)")) {
                Object[][] rows = {{1, "churn", 0.25}, {2, "fraud", 0.5}, {3, "churn", 0.75}};
                for (Object[] r : rows) {
                    ps.setInt(1, (Integer) r[0]);
                    ps.setString(2, (String) r[1]);
                    ps.setDouble(3, (Double) r[2]);
                    ps.setTimestamp(4, at);
                    ps.addBatch();
                }
                for (int n : ps.executeBatch()) {
                    inserted += Math.max(n, 0);
                }
            }
            List<String> out = new ArrayList<>();
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT id, model, score FROM " + table + " WHERE model = ? AND score > ? ORDER BY id")) {
                ps.setString(1, "churn");
                ps.setDouble(2, 0.1);
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        out.add("[" + rs.getLong(1) + "," + quote(rs.getString(2)) + "," + rs.getDouble(3) + "]");
                    }
                }
            }
            // ClickHouse's own {name:Type} binding, done by the server: through
            // the client-v2 Client the driver runs on (what a JDBC tool's
            // "native query" reaches; JDBC itself has only `?`).
            List<String> bound = new ArrayList<>();
            Map<String, Object> params = new HashMap<>();
            params.put("model", "churn");
            params.put("min", 0.1);
            for (GenericRecord r : conn.unwrap(ConnectionImpl.class).getClient().queryAll(
                    "SELECT id, model, score FROM " + table + " WHERE model = {model:String} AND score > {min:Float64} ORDER BY id", params)) {
                bound.add("[" + r.getLong("id") + "," + quote(r.getString("model")) + "," + r.getDouble("score") + "]");
            }
            Integer code = null;
            String error = "";
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT * FROM " + table + "_does_not_exist")) {
                rs.next();
            } catch (SQLException e) {
                code = e.getErrorCode();
                error = String.valueOf(e.getMessage());
            }
            String variants = variants(url, table, at);
            System.out.print("{\"variants\":" + variants + ",\"client\":" + quote(version) + ",\"inserted\":" + inserted + ",\"rows\":[" + String.join(",", out)
                    + "],\"bound_rows\":[" + String.join(",", bound) + "],\"error_code\":" + code + ",\"error\":" + quote(error.substring(0, Math.min(300, error.length()))) + "}");
        }
    }
}
