import Resolution

extension Harness {
    /// A setting's value, from a configuration file or a `postgres` command line.
    static let guc = Harness(
        name: "guc", maxLength: 64,
        summary: "GUC values: every setting pgnode reads, GUCValue integer/real/enum parsing"
    ) { bytes in
        let value = text(bytes)
        for definition in PostgresSettings.definitions {
            let setting = PostgresSettings.make(definition, value: value, source: "command line")
            consume(setting)
            require(setting.bytes == nil || setting.number != nil, "\(definition.name): bytes without a number")
            if let number = setting.number { require(number.isFinite, "\(definition.name) = \(number)") }
            consume(setting.json)
        }
        for base: Int64? in [nil, 1, 1024, 8192, 1 << 20] {
            if let units = try? GUCValue.parseInteger(value, baseUnitBytes: base) {
                consume(units)
                require(units >= Int64(Int32.min) && units <= Int64(Int32.max), "integer \(units) out of int range")
            }
        }
        if let real = try? GUCValue.parseReal(value) {
            consume(real)
            require(real.isFinite, "real \(real)")
        }
        consume(try? GUCValue.parseEnum(value, options: ["on": "on", "off": "off", "try": "try"]))
    }
}
