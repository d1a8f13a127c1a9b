PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE services (
	name VARCHAR(64) NOT NULL, 
	token VARCHAR(256), 
	state VARCHAR(16) NOT NULL, 
	instance_count INTEGER NOT NULL, 
	current_version INTEGER NOT NULL, 
	latest_version INTEGER NOT NULL, 
	revision INTEGER NOT NULL, 
	related_to VARCHAR(64), 
	weight INTEGER, 
	"rollback" JSON, 
	message TEXT NOT NULL, 
	document JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (name)
);
INSERT INTO services VALUES('kept','token-of-kept','running',3,2,2,0,NULL,NULL,'null','','{"name": "kept", "processor": "pmml", "metadata": {"instance": 3}}','2026-11-26 22:47:53.078779','2026-11-26 22:47:53.095711');
CREATE TABLE access_keys (
	id VARCHAR(64) NOT NULL, 
	secret VARCHAR(128) NOT NULL, 
	user VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO access_keys VALUES('key-id','key-secret','admin','2026-11-26 22:47:53.101771');
CREATE TABLE meta (
	"key" VARCHAR(64) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO meta VALUES('schema_version','1');
CREATE TABLE metric_points (
	id INTEGER NOT NULL, 
	service VARCHAR(64) NOT NULL, 
	instance VARCHAR(128) NOT NULL, 
	metric VARCHAR(32) NOT NULL, 
	tier INTEGER NOT NULL, 
	time FLOAT NOT NULL, 
	value FLOAT NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO metric_points VALUES(1,'kept','','rps',0,10.0,4.0);
CREATE TABLE events (
	id INTEGER NOT NULL, 
	service VARCHAR(64) NOT NULL, 
	time DATETIME NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	message TEXT NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO events VALUES(1,'kept','2026-11-26 22:47:53.107158','autoscale','scaled to 3');
CREATE TABLE alert_rules (
	name VARCHAR(64) NOT NULL, 
	document JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (name)
);
CREATE TABLE versions (
	id INTEGER NOT NULL, 
	service VARCHAR(64) NOT NULL, 
	version INTEGER NOT NULL, 
	document JSON NOT NULL, 
	artefacts JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (service, version), 
	FOREIGN KEY(service) REFERENCES services (name) ON DELETE CASCADE
);
INSERT INTO versions VALUES(1,'kept',1,'{"name": "kept", "processor": "pmml", "metadata": {"instance": 2}}','{"model": "eas://a"}','2026-11-26 22:47:53.078779');
INSERT INTO versions VALUES(2,'kept',2,'{"name": "kept", "processor": "pmml", "metadata": {"instance": 3}}','{}','2026-11-26 22:47:53.095426');
CREATE TABLE autoscale_rules (
	service VARCHAR(64) NOT NULL, 
	min_instances INTEGER NOT NULL, 
	max_instances INTEGER NOT NULL, 
	metric VARCHAR(16) NOT NULL, 
	target FLOAT NOT NULL, 
	changed_at FLOAT, 
	PRIMARY KEY (service), 
	FOREIGN KEY(service) REFERENCES services (name) ON DELETE CASCADE
);
CREATE TABLE alert_states (
	rule VARCHAR(64) NOT NULL, 
	service VARCHAR(64) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	since DATETIME NOT NULL, 
	value FLOAT NOT NULL, 
	notified_at FLOAT, 
	PRIMARY KEY (rule, service), 
	FOREIGN KEY(rule) REFERENCES alert_rules (name) ON DELETE CASCADE
);
CREATE TABLE alert_deliveries (
	id INTEGER NOT NULL, 
	rule VARCHAR(64) NOT NULL, 
	service VARCHAR(64) NOT NULL, 
	time DATETIME NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	delivered BOOLEAN NOT NULL, 
	outcome TEXT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(rule) REFERENCES alert_rules (name) ON DELETE CASCADE
);
CREATE INDEX metric_points_age ON metric_points (tier, time);
CREATE INDEX metric_points_lookup ON metric_points (service, tier, time);
CREATE INDEX events_by_service ON events (service, id);
CREATE INDEX alert_deliveries_by_rule ON alert_deliveries (rule, id);
COMMIT;
