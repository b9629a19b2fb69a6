import Resolution

extension Harness {
    /// `postmaster.opts` and a `postgres` command line (`-c name=value`, `--name=value`, `-B 1024`).
    static let postmaster = Harness(
        name: "postmaster", maxLength: 2048,
        summary: "postmaster.opts (PostmasterOptions.splitOpts) and command lines (.parse)"
    ) { bytes in
        let words = PostmasterOptions.splitOpts(text(bytes))
        consume(words)
        let fromOpts = PostmasterOptions.parse(Array(words.dropFirst()))
        let fromCmdline = PostmasterOptions.parse(Array(Cmdline.parse(bytes).dropFirst()))
        for options in [fromOpts, fromCmdline] {
            consume(options)
            consume(options.value("config_file"))
            for setting in options.settings {
                if let definition = PostgresSettings.definitions.first(where: { $0.name == setting.name }) {
                    consume(PostgresSettings.make(definition, value: setting.value, source: "command line").json)
                }
            }
        }
    }
}
