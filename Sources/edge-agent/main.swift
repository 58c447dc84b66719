print("edge-agent")
