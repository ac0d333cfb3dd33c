CREATE TABLE mixhouse.lookup_7_3_rows_0123456789ab ON CLUSTER mixhouse (k String, v String) ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/mixhouse/lookup_7_3_rows_0123456789ab', '{replica}') ORDER BY k;

INSERT INTO mixhouse.lookup_7_3_rows_0123456789ab (k, v) FORMAT JSONEachRow;

SYSTEM SYNC REPLICA ON CLUSTER mixhouse mixhouse.lookup_7_3_rows_0123456789ab;

CREATE TABLE mixhouse.lookup_7_3_loading_0123456789ab ON CLUSTER mixhouse ENGINE = Join(ANY, LEFT, k) AS SELECT k, v FROM mixhouse.lookup_7_3_rows_0123456789ab;

RENAME TABLE mixhouse.lookup_7_3_loading_0123456789ab TO mixhouse.lookup_7_3 ON CLUSTER mixhouse;

DROP TABLE IF EXISTS mixhouse.lookup_7_3_rows_0123456789ab ON CLUSTER mixhouse SYNC;

DROP TABLE IF EXISTS mixhouse.lookup_7_2 ON CLUSTER mixhouse;

