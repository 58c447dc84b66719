import CloudCollector
import Dispatch
import EdgeSyncSQLite
import Foundation

// A thin dispatcher; everything it does lives in CloudCollector so tests can reach it.
let arguments = Array(CommandLine.arguments.dropFirst())
let status = await CollectorCommand.run(arguments)
exit(status)
