/// The version of pgnode, printed by `--version` and sent as the agent's user agent.
public enum PGNodeVersion {
    /// Semantic version of this build.
    public static let current = "0.1.0"
}
