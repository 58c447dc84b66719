import EdgeSyncCommandLine

extension AgentConfiguration {
    /// What `edge-agent import --config FILE` takes from the agent's configuration: the spool
    /// settings and `processing.rules`, so an import is processed exactly as the running agent
    /// would process the same readings.
    ///
    /// The file is checked as `run` checks it (an unknown key or a bad value is a `UsageError`
    /// naming it); the import's flags (`--data-dir`, `--device`, `--fsync`, `--max-bytes`,
    /// `--when-full`) override it. An import uploads nothing, so `collector.url` may be missing and
    /// the token is never read.
    package init(importing file: ConfigurationFile, arguments: ParsedArguments) throws(UsageError) {
        var filled = arguments
        if arguments.value("--collector") == nil, try file.string("collector.url") == nil {
            filled.values["--collector"] = ["http://not-used-by-import.invalid"]
        }
        filled.values["--token"] = ["unread"]
        filled.values["--token-file"] = nil
        try self.init(file: file, arguments: filled, environment: [:])
    }
}
