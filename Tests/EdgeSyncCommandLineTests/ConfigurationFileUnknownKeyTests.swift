import EdgeSyncCommandLine
import Testing

@Suite struct ConfigurationFileUnknownKeyTests {
    @Test(arguments: [
        (#"{"limts": {}}"#, "limts"),
        (#"{"limits": {"max": 1}, "extra": {"a": {}}}"#, "extra"),
        (#"{"limits": {"max": 1, "min": 2}}"#, "limits.min"),
        (#"{"limits": {"max": 1, "deep": {}}}"#, "limits.deep"),
    ])
    func anUnknownKeyOrSectionIsNamedEvenWhenEmpty(json: String, unknown: String) throws {
        let file = try ConfigurationFile(bytes: Array(json.utf8), source: "test.json")
        _ = try file.integer("limits.max")
        #expect(throws: UsageError("unknown configuration key", setting: "test.json: \(unknown)")) {
            try file.rejectUnknownKeys()
        }
    }

    @Test func knownKeysAndEmptyKnownSectionsPass() throws {
        let file = try ConfigurationFile(bytes: Array(#"{"limits": {}, "name": "x"}"#.utf8), source: "test.json")
        _ = try file.integer("limits.max")
        _ = try file.string("name")
        try file.rejectUnknownKeys()
    }
}
