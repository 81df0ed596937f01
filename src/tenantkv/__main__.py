from tenantkv.server.main import main

raise SystemExit(main())
