import Foundation

/// The committed fuzz corpora (`Fuzz/Corpus/<target>/`, see `scripts/fuzz`): real files as seeds,
/// and the inputs that once made a parser trap (`regression-*`), which the regression tests feed
/// to the same parser.
public enum FuzzCorpus {
    /// The bytes of `Fuzz/Corpus/<target>/<name>`.
    public static func input(_ target: String, _ name: String) throws -> [UInt8] {
        let url = TestEnvironment.packageRoot.appendingPathComponent("Fuzz/Corpus/\(target)/\(name)")
        return [UInt8](try Data(contentsOf: url))
    }
}
