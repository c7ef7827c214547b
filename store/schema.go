package store

// migrations are the schema's versions, applied in order inside one
// transaction each; schema_version records the last one applied. Append only:
// a shipped migration is never edited.
//
// Conventions: times are Unix milliseconds (UTC) in INTEGER columns named
// *_ms; money is integer micro-units plus a remainder in 1/3,600,000 of a
// micro-unit (the exact fraction left by pricing per GPU-hour by the
// millisecond), so sums are exact; utilisation is a ratio 0..1.
var migrations = []string{
	// 1: the first schema.
	`
CREATE TABLE nodes (
	id            TEXT PRIMARY KEY,
	hostname      TEXT NOT NULL DEFAULT '',
	region        TEXT NOT NULL DEFAULT '',
	site          TEXT NOT NULL DEFAULT '',
	provider      TEXT NOT NULL DEFAULT '',
	jurisdiction  TEXT NOT NULL DEFAULT '',
	labels        TEXT NOT NULL DEFAULT '{}',  -- JSON object
	team          TEXT NOT NULL DEFAULT '',    -- label "team"
	model         TEXT NOT NULL DEFAULT '',    -- model of device 0
	gpus          INTEGER NOT NULL DEFAULT 0,
	first_seen_ms INTEGER NOT NULL DEFAULT 0,  -- first sample time
	last_seen_ms  INTEGER NOT NULL DEFAULT 0,  -- latest sample time
	last_seq      INTEGER NOT NULL DEFAULT 0,  -- durable last applied sequence
	ledger_to_ms  INTEGER NOT NULL DEFAULT 0   -- the ledger is accrued up to here
);

CREATE TABLE devices (
	node_id      TEXT NOT NULL,
	idx          INTEGER NOT NULL,
	uuid         TEXT NOT NULL DEFAULT '',
	vendor       TEXT NOT NULL DEFAULT '',
	model        TEXT NOT NULL DEFAULT '',
	memory_total INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (node_id, idx)
) WITHOUT ROWID;

-- One row per version of a node's lease: a new version whenever the price,
-- currency, billing, reservation, id, start, end or GPU count changes. A
-- version holds from effective_ms (a whole minute) until the next version's.
CREATE TABLE leases (
	node_id      TEXT NOT NULL,
	version      INTEGER NOT NULL,
	effective_ms INTEGER NOT NULL,
	lease_id     TEXT NOT NULL DEFAULT '',
	gpus         INTEGER NOT NULL,      -- GPUs leased (the node's device count)
	price_micros INTEGER NOT NULL,      -- per GPU-hour
	currency     TEXT NOT NULL,
	billing      TEXT NOT NULL,         -- "second" or "hour"
	reserved     INTEGER NOT NULL DEFAULT 0,
	start_ms     INTEGER NOT NULL,      -- 0: unknown (accrues from first sight)
	end_ms       INTEGER NOT NULL,      -- 0: open-ended
	PRIMARY KEY (node_id, version)
) WITHOUT ROWID;

-- Per-GPU one-minute rollups. Sums and counts so partial writes merge; the
-- means are sum/count. idle_ms is reported_ms when the minute's mean
-- utilisation is under the idle threshold, else 0.
CREATE TABLE rollup_minute (
	node_id     TEXT NOT NULL,
	idx         INTEGER NOT NULL,
	minute_ms   INTEGER NOT NULL,
	samples     INTEGER NOT NULL,
	util_n      INTEGER NOT NULL,
	util_sum    REAL NOT NULL,
	util_max    REAL NOT NULL,
	mem_n       INTEGER NOT NULL,
	mem_sum     REAL NOT NULL,          -- bytes
	power_n     INTEGER NOT NULL,
	power_sum   REAL NOT NULL,          -- watts
	energy_j    REAL NOT NULL,          -- joules (power integrated over reported time)
	temp_max    REAL,                   -- °C, NULL when never reported
	reported_ms INTEGER NOT NULL,
	idle_ms     INTEGER NOT NULL,
	job         TEXT NOT NULL DEFAULT '',
	team        TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (minute_ms, node_id, idx)
) WITHOUT ROWID;

CREATE TABLE rollup_hour (
	node_id     TEXT NOT NULL,
	idx         INTEGER NOT NULL,
	hour_ms     INTEGER NOT NULL,
	samples     INTEGER NOT NULL,
	util_n      INTEGER NOT NULL,
	util_sum    REAL NOT NULL,
	util_max    REAL NOT NULL,
	mem_n       INTEGER NOT NULL,
	mem_sum     REAL NOT NULL,
	power_n     INTEGER NOT NULL,
	power_sum   REAL NOT NULL,
	energy_j    REAL NOT NULL,
	temp_max    REAL,
	reported_ms INTEGER NOT NULL,
	idle_ms     INTEGER NOT NULL,
	PRIMARY KEY (hour_ms, node_id, idx)
) WITHOUT ROWID;

CREATE TABLE events (
	id       INTEGER PRIMARY KEY,
	node_id  TEXT NOT NULL,
	time_ms  INTEGER NOT NULL,
	kind     TEXT NOT NULL,
	severity TEXT NOT NULL,
	device   INTEGER NOT NULL,
	code     INTEGER NOT NULL DEFAULT 0,
	message  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_time ON events (time_ms);

CREATE TABLE alerts (
	id       TEXT NOT NULL,
	start_ms INTEGER NOT NULL,
	end_ms   INTEGER NOT NULL DEFAULT 0,  -- 0 while open
	kind     TEXT NOT NULL,
	severity TEXT NOT NULL,
	node_id  TEXT NOT NULL DEFAULT '',
	region   TEXT NOT NULL DEFAULT '',
	device   INTEGER NOT NULL DEFAULT -1,
	job      TEXT NOT NULL DEFAULT '',
	message  TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (id, start_ms)
);
CREATE INDEX alerts_open ON alerts (end_ms);

-- The cost ledger: per node, per UTC hour, per currency, per job (and team)
-- that used the GPU-time; job '' holds leased time no job used (idle without a
-- job, dark) and any per-started-hour rounding. Money = micros + rem/3600000.
CREATE TABLE ledger (
	node_id         TEXT NOT NULL,
	hour_ms         INTEGER NOT NULL,
	currency        TEXT NOT NULL,
	job             TEXT NOT NULL,
	team            TEXT NOT NULL,
	upto_ms         INTEGER NOT NULL,   -- accrued up to (exclusive)
	leased_gpu_ms   INTEGER NOT NULL,
	reported_gpu_ms INTEGER NOT NULL,   -- reported within the lease
	idle_gpu_ms     INTEGER NOT NULL,   -- reported idle within the lease
	dark_gpu_ms     INTEGER NOT NULL,   -- leased, not reported
	spend_micros    INTEGER NOT NULL,
	spend_rem       INTEGER NOT NULL,
	idle_micros     INTEGER NOT NULL,
	idle_rem        INTEGER NOT NULL,
	dark_micros     INTEGER NOT NULL,
	dark_rem        INTEGER NOT NULL,
	PRIMARY KEY (hour_ms, node_id, currency, job, team)
) WITHOUT ROWID;

-- Small key/value state (e.g. the display currency and rates a report uses).
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
`, // 2: the commit journal (see journal.go).
	`
CREATE TABLE journal (
	id   INTEGER PRIMARY KEY,
	data BLOB NOT NULL
);
`,
	// 3: the ledger summed per UTC day, so reports over months read a
	// twenty-fourth of the rows. Rebuilt from the hourly ledger.
	`
CREATE TABLE ledger_day (
	day_ms          INTEGER NOT NULL,
	node_id         TEXT NOT NULL,
	currency        TEXT NOT NULL,
	job             TEXT NOT NULL,
	team            TEXT NOT NULL,
	upto_ms         INTEGER NOT NULL,
	leased_gpu_ms   INTEGER NOT NULL,
	reported_gpu_ms INTEGER NOT NULL,
	idle_gpu_ms     INTEGER NOT NULL,
	dark_gpu_ms     INTEGER NOT NULL,
	spend_micros    INTEGER NOT NULL,
	spend_rem       INTEGER NOT NULL,   -- sums of remainders: not normalised
	idle_micros     INTEGER NOT NULL,
	idle_rem        INTEGER NOT NULL,
	dark_micros     INTEGER NOT NULL,
	dark_rem        INTEGER NOT NULL,
	PRIMARY KEY (day_ms, node_id, currency, job, team)
) WITHOUT ROWID;
` + ledgerDaySQLv3 + `;
`,
	// 4: paid but blind. A lease version records how many of its GPUs no
	// sensor saw; the ledger keeps the blind part of the dark time.
	`
ALTER TABLE leases ADD COLUMN blind INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN blind_gpu_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN blind_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN blind_rem INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger_day ADD COLUMN blind_gpu_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger_day ADD COLUMN blind_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger_day ADD COLUMN blind_rem INTEGER NOT NULL DEFAULT 0;
`,
}

// ledgerDaySQLv3 is LedgerDaySQL as migration 3 ran it, before ledger_day
// had the blind columns; a shipped migration is never edited.
const ledgerDaySQLv3 = `INSERT INTO ledger_day SELECT hour_ms - hour_ms % 86400000, node_id, currency, job, team, MAX(upto_ms),
	SUM(leased_gpu_ms), SUM(reported_gpu_ms), SUM(idle_gpu_ms), SUM(dark_gpu_ms), SUM(spend_micros), SUM(spend_rem),
	SUM(idle_micros), SUM(idle_rem), SUM(dark_micros), SUM(dark_rem)
FROM ledger GROUP BY 1, node_id, currency, job, team`

// LedgerDaySQL sums the hourly ledger into ledger_day (for every day, or,
// with a WHERE appended, for some), as Commit keeps it.
const LedgerDaySQL = `INSERT INTO ledger_day (day_ms, node_id, currency, job, team, upto_ms, leased_gpu_ms,
	reported_gpu_ms, idle_gpu_ms, dark_gpu_ms, spend_micros, spend_rem, idle_micros, idle_rem, dark_micros, dark_rem,
	blind_gpu_ms, blind_micros, blind_rem)
SELECT hour_ms - hour_ms % 86400000, node_id, currency, job, team, MAX(upto_ms),
	SUM(leased_gpu_ms), SUM(reported_gpu_ms), SUM(idle_gpu_ms), SUM(dark_gpu_ms), SUM(spend_micros), SUM(spend_rem),
	SUM(idle_micros), SUM(idle_rem), SUM(dark_micros), SUM(dark_rem), SUM(blind_gpu_ms), SUM(blind_micros), SUM(blind_rem)
FROM ledger GROUP BY 1, node_id, currency, job, team`
