import PGNodeModel

extension Observation {
    /// This observation with `evidence.saturated` listing every evidence value that sits at a
    /// 64-bit bound (`Int64.max` or `Int64.min`, see `Int64.isSaturated`): an input out of any
    /// range a kernel or PostgreSQL produces, clamped, or a sum or product too large to
    /// represent, saturated. Paths are dotted keys with array indexes (`by_pid[0].stall_ns`).
    /// Nothing is added when no value is saturated.
    public func flaggingSaturatedValues() -> Observation {
        var paths: [String] = []
        for member in evidence.members { Self.collectSaturated(member.value, path: member.key, into: &paths) }
        guard !paths.isEmpty else { return self }
        var flagged = self
        flagged.evidence["saturated"] = .array(paths.map { .string($0) })
        return flagged
    }

    static func collectSaturated(_ value: JSONValue, path: String, into paths: inout [String]) {
        switch value {
        case .int(let v) where v.isSaturated: paths.append(path)
        case .array(let items):
            for (index, item) in items.enumerated() { collectSaturated(item, path: "\(path)[\(index)]", into: &paths) }
        case .object(let object):
            for member in object.members { collectSaturated(member.value, path: "\(path).\(member.key)", into: &paths) }
        default: break
        }
    }
}
