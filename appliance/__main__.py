import sys

if getattr(sys, "frozen", False) and sys.argv[1:2] == ["parse-worker"]:
    # the bundle's parser sandbox child (appliance.ingest.sandbox.worker_command): it must
    # not import the server, only the parsers
    from appliance.ingest.parse_worker import main as parse_worker

    parse_worker(sys.argv[2:])
    raise SystemExit(0)
if getattr(sys, "frozen", False) and sys.argv[1:2] == ["confine"]:
    # the bundle's confined launcher (appliance.ingest.confine.run_confined): confine, exec
    from appliance.ingest.confine import main as confine_and_exec

    confine_and_exec(sys.argv[2:])

from appliance.cli import main

raise SystemExit(main())
