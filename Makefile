# Every target reads the HUB_* settings (environment or .env) and runs in the foreground.
# The virtual environment is created on first use; nothing else needs installing by hand.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HUB := $(PY) -m hub
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help venv browser demo test lint typecheck migrate api worker relay sandbox tryton tryton-e2e flower failures groups replay \
        status timeline lifecycle-e2e bench docs-figures docs-session chaos reconcile prune doctor clean \
        cluster-up cluster-down cluster-status cluster-chaos \
        pg-tools pg-cluster-up pg-cluster-down pg-cluster-status pg-chaos

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP) ## create the virtual environment (done by every target that needs it)

demo: venv ## the whole hub on a place of its own (<db>_demo, <prefix>demo, ports +20..25), a batch of orders; trial mode if no server answers [ERP=tryton]
	$(if $(filter tryton,$(ERP)),$(PY) -m sandbox.tryton.demo,$(HUB) demo)

test: venv browser pg-tools lint typecheck ## ruff, mypy and the whole test suite on real PostgreSQL and RabbitMQ
	$(PY) -m pytest -q

# The failures page is tested in a real headless browser: Debian's chromium and its driver.
# Two checkouts' `make test` at once on one machine both install what is missing: the second
# apt-get waits for the first's dpkg lock instead of failing on it.
APT := apt-get -o DPkg::Lock::Timeout=600
browser: ## install chromium and chromium-driver (apt-get) if either is missing
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; else \
		$(APT) update -qq && DEBIAN_FRONTEND=noninteractive $(APT) install -y chromium chromium-driver; fi

lint: venv
	$(VENV)/bin/ruff check hub tasks adapters tests bench sandbox
	$(VENV)/bin/ruff format --check hub tasks adapters tests bench sandbox
	$(VENV)/bin/lint-imports

typecheck: venv
	$(VENV)/bin/mypy

migrate: venv ## create the database if needed and migrate it to the newest schema
	$(HUB) migrate

api: venv ## serve the intake API on HUB_API_HOST:HUB_API_PORT (default 127.0.0.1:8000)
	$(HUB) api

worker: venv ## a Celery worker consuming the three step queues
	$(HUB) worker

relay: venv ## the outbox relay
	$(HUB) relay

sandbox: venv ## the sandbox ERP, warehouse and accounting servers (and SMTP with HUB_NOTIFY_ENABLED=1)
	$(PY) -m sandbox

tryton: venv ## a local Tryton (real ERP) on PostgreSQL, built once then cached as a template [FRESH=1]
	$(PY) -m sandbox.tryton $(if $(FRESH),--fresh)

lifecycle-e2e: venv ## cancellation on real workers at the issue's size: 60 orders, 20 cancelled at random moments (make test runs 24/8)
	HUB_LIFECYCLE_E2E_ORDERS=60 HUB_LIFECYCLE_E2E_CANCELLED=20 $(PY) -m pytest -q -s -p no:cacheprovider \
		tests/e2e/test_cancellation.py -k random_moments

tryton-e2e: venv ## the whole Tryton proof alone (make test runs it too): 30 orders, 3 out of stock, workers and Tryton SIGKILLed (~1.5 min)
	$(PY) -m pytest -q -p no:cacheprovider tests/tryton/test_e2e.py

timeline: venv ## the timeline of one order: make timeline ORDER=<id or external id>
	$(HUB) timeline $(ORDER)

flower: venv ## Flower on HUB_FLOWER_HOST:HUB_FLOWER_PORT (127.0.0.1:5555), basic auth from settings
	$(HUB) flower

status: venv ## one screen: orders, outbox lag, queues, failures, breakers, workers (WATCH=1 refreshes)
	$(HUB) status $(if $(WATCH),--watch)

failures: venv ## open failures: make failures [STEP=inventory] [ERROR=permanent] [SINCE=2h]
	@$(HUB) failures list $(if $(STEP),--step $(STEP)) $(if $(ERROR),--kind $(ERROR)) \
		$(if $(SINCE),--since $(SINCE))

groups: venv ## open failures grouped by cause (step, kind, code, message with ids and numbers masked)
	$(HUB) failures groups

replay: venv ## make replay ID=<failure id> | GROUP=<group id> | STEP=... ERROR=... | ALL=1 [DRY=1] [RATE=5] [REASON="..."]
	@$(HUB) replay $(ID) $(if $(GROUP),--group $(GROUP)) $(if $(STEP),--step $(STEP)) $(if $(ERROR),--kind $(ERROR)) \
		$(if $(SINCE),--since $(SINCE)) $(if $(ALL),--all) $(if $(DRY),--dry-run) \
		$(if $(RATE),--rate $(RATE)) $(if $(REASON),--reason "$(REASON)")

discard: venv ## make discard ID=<failure id> | GROUP=<group id> REASON="why" [DRY=1]
	$(HUB) discard $(ID) $(if $(GROUP),--group $(GROUP)) $(if $(DRY),--dry-run) --reason "$(REASON)"

breakers: venv ## the shared breaker of each downstream system
	$(HUB) breakers

# The bench and the chaos suite start a stack of their own (database hub_bench / hub_chaos,
# queue prefix hubbench / hubchaos, ports 18500-18504 / 18510-18514) beside anything running.
# The chaos suite also starts a RabbitMQ node and a PostgreSQL cluster of its own (18530-18531,
# 18540-18549 for rabbitmqctl, 18550; data in var/chaos/), which it restarts: never the
# machine's. HUB_CHAOS_PORT_BASE moves all of its ports.
bench: venv ## throughput, intake latency, outage recovery, memory, intake capacity, flaky ERP: one table (var/bench only)
	$(PY) -m bench $(ARGS)

# Runs write under var/ only; the figures in docs/ change only when asked for, here.
docs-figures: venv ## refresh docs/outage.png from the last make bench (runs the outage figure if none)
	@test -f var/bench/outage.png || $(PY) -m bench --only outage
	cp var/bench/outage.png docs/outage.png

docs-session: venv ## re-record docs/erp-outage-session.txt (an ERP shedding load, down, back; failure groups)
	@mkdir -p var
	$(PY) -m bench.session > var/erp-outage-session.txt
	mv var/erp-outage-session.txt docs/erp-outage-session.txt

chaos: venv ## orders (some cancelled) under kills, restarts of its own broker and database, flaps; the exactly-once check
	$(PY) -m bench.chaos $(ARGS)

# A local 3-node RabbitMQ cluster (hubc1..3@localhost, AMQP 127.0.0.1:5701-5703, data and logs
# in var/cluster/) beside the machine's own node, which it leaves alone. docs/cluster.md.
cluster-up: venv ## start a local 3-node RabbitMQ cluster (prints its failover HUB_BROKER_URL)
	$(PY) -m bench.cluster up

cluster-down: venv ## stop the nodes cluster-up started
	$(PY) -m bench.cluster down

cluster-status: venv ## each node of the local cluster, and every queue's leader and replicas
	$(PY) -m bench.cluster status && $(PY) -m bench.cluster queues

cluster-chaos: venv ## orders while cluster nodes are killed and stopped; then the exactly-once check
	$(PY) -m bench.cluster_chaos $(ARGS)

# A local Patroni cluster: three PostgreSQL 15 members (hubpg1..3, 127.0.0.1:25411-25413,
# Patroni REST 25421-25423), synchronous replication, one etcd on 25400; data and logs in
# var/pg-cluster/. HUB_PG_CLUSTER_PORT_BASE moves the ports. docs/cluster.md.
pg-tools: ## install Debian's patroni and etcd-server (apt-get) if either is missing
	@if command -v patroni >/dev/null && command -v etcd >/dev/null; then :; else \
		$(APT) update -qq && DEBIAN_FRONTEND=noninteractive $(APT) install -y patroni etcd-server; fi

pg-cluster-up: venv pg-tools ## start a local 3-member Patroni cluster (prints its multi-host HUB_DATABASE_URL)
	$(PY) -m bench.pg_cluster up

pg-cluster-down: venv ## stop the members and the etcd pg-cluster-up started
	$(PY) -m bench.pg_cluster down

pg-cluster-status: venv ## each member of the local Patroni cluster: role, state, timeline, lag
	$(PY) -m bench.pg_cluster status

pg-chaos: venv pg-tools ## orders while the PostgreSQL primary is killed, then switched over; the exactly-once check
	$(PY) -m bench.pg_chaos $(ARGS)

reconcile: venv ## the hub's records against the sandbox ledgers [AT_REST=1] [ARGS="--order CRM-1001"]
	$(HUB) reconcile $(if $(or $(AT_REST),$(SETTLED)),--at-rest) $(ARGS)

prune: venv ## delete settled history: make prune [OLDER_THAN=90d] [DRY=1] (run with DRY=1 first)
	$(HUB) prune --older-than $(or $(OLDER_THAN),90d) $(if $(DRY),--dry-run)

doctor: venv ## what operators get wrong (vhost, queues, stranded retries, workers), with fixes
	$(HUB) doctor

clean: ## remove the virtual environment, run files, build metadata and tool caches
	rm -rf $(VENV) var *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
