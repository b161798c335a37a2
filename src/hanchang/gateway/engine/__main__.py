from hanchang.gateway.engine.worker import main

main()
