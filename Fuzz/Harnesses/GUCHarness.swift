import Resolution

extension Harness {
    /// A setting's value, from a configuration file or a `postgres` command line, parsed as each
    /// setting pgnode reads (memory with units, integers, reals, enumerations).
    static let guc = Harness(
        name: "guc", maxLength: 64, summary: "GUC values: PostgresSettings.make for every setting pgnode reads"
    ) { bytes in
        let value = text(bytes)
        for definition in PostgresSettings.definitions {
            let setting = PostgresSettings.make(definition, value: value, source: "command line")
            consume(setting)
            require(setting.bytes == nil || setting.number != nil, "\(definition.name): bytes without a number")
            if let number = setting.number { require(number.isFinite, "\(definition.name) = \(number)") }
            consume(setting.json)
        }
    }
}
