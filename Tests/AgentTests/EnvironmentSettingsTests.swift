import Agent
import Testing

/// A command described the way the argument parser's `--experimental-dump-help` describes one: two
/// options, a flag with an inversion, a lone flag, and the parser's own --help and --version.
let describedCommand = """
    {"command": {"commandName": "agent", "arguments": [
      {"kind": "option", "names": [{"kind": "long", "name": "interval"}], "isOptional": true},
      {"kind": "option", "names": [{"kind": "long", "name": "endpoint-token-file"}], "isOptional": true},
      {"kind": "flag", "names": [{"kind": "long", "name": "gzip"}], "isOptional": true},
      {"kind": "flag", "names": [{"kind": "long", "name": "no-gzip"}], "isOptional": true},
      {"kind": "flag", "names": [{"kind": "long", "name": "dry-run"}], "isOptional": true},
      {"kind": "positional", "names": [{"kind": "long", "name": "ignored"}], "isOptional": true},
      {"kind": "flag", "names": [{"kind": "long", "name": "version"}], "isOptional": true},
      {"kind": "flag", "names": [{"kind": "short", "name": "h"}, {"kind": "long", "name": "help"}]}
    ]}}
    """

@Suite("Flags from PGNODE_<FLAG> environment variables")
struct EnvironmentSettingsTests {
    let settings: EnvironmentSettings

    init() throws { settings = try EnvironmentSettings(toolInfo: describedCommand) }

    @Test("the flags come from the parser's description: options, inversions, lone flags; not --help or --version")
    func flagsFromDescription() {
        #expect(
            settings.arguments == [
                .init(name: "interval", kind: .option), .init(name: "endpoint-token-file", kind: .option),
                .init(name: "gzip", kind: .invertibleFlag), .init(name: "dry-run", kind: .flag),
            ])
        #expect(
            settings.arguments.map(\.variable) == [
                "PGNODE_INTERVAL", "PGNODE_ENDPOINT_TOKEN_FILE", "PGNODE_GZIP", "PGNODE_DRY_RUN",
            ])
    }

    @Test("a variable becomes --name=value before the command line; values are passed as they are")
    func options() throws {
        let merged = try settings.merged(
            commandLine: ["--log-level", "debug"],
            environment: ["PGNODE_INTERVAL": "5", "PGNODE_ENDPOINT_TOKEN_FILE": "/run/a b=c", "HOME": "/root"])
        #expect(merged.arguments == ["--interval=5", "--endpoint-token-file=/run/a b=c", "--log-level", "debug"])
        #expect(
            merged.variables == ["interval": "PGNODE_INTERVAL", "endpoint-token-file": "PGNODE_ENDPOINT_TOKEN_FILE"])
    }

    @Test(
        "a flag on the command line wins: its variable is not used at all",
        arguments: [["--interval", "9"], ["--interval=9"]])
    func flagWins(commandLine: [String]) throws {
        let merged = try settings.merged(commandLine: commandLine, environment: ["PGNODE_INTERVAL": "5"])
        #expect(merged.arguments == commandLine)
        #expect(merged.variables.isEmpty)
    }

    @Test("an empty variable is unset (a ConfigMap key with the value \"\")")
    func emptyIsUnset() throws {
        let merged = try settings.merged(commandLine: [], environment: ["PGNODE_INTERVAL": "", "PGNODE_GZIP": ""])
        #expect(merged.arguments.isEmpty)
    }

    @Test(
        "booleans: true/false, 1/0, yes/no, on/off in any case",
        arguments: [
            ("true", ["--gzip"], ["--dry-run"]), ("FALSE", ["--no-gzip"], []), ("1", ["--gzip"], ["--dry-run"]),
            ("0", ["--no-gzip"], []), ("Yes", ["--gzip"], ["--dry-run"]), ("off", ["--no-gzip"], []),
        ])
    func booleans(value: String, inverted: [String], lone: [String]) throws {
        #expect(try settings.merged(commandLine: [], environment: ["PGNODE_GZIP": value]).arguments == inverted)
        #expect(try settings.merged(commandLine: [], environment: ["PGNODE_DRY_RUN": value]).arguments == lone)
    }

    @Test("either spelling of an inversion on the command line wins over the variable")
    func inversionWins() throws {
        let merged = try settings.merged(commandLine: ["--no-gzip"], environment: ["PGNODE_GZIP": "true"])
        #expect(merged.arguments == ["--no-gzip"])
    }

    @Test("a boolean that is neither: an error naming the variable")
    func badBoolean() {
        #expect(throws: EnvironmentSettingsError.self) {
            try settings.merged(commandLine: [], environment: ["PGNODE_GZIP": "maybe"])
        }
        do {
            _ = try settings.merged(commandLine: [], environment: ["PGNODE_GZIP": "maybe"])
        } catch {
            #expect(error.message == "PGNODE_GZIP must be true or false (or 1/0, yes/no, on/off), not 'maybe'")
        }
    }

    @Test("arguments after -- are not flags")
    func afterTerminator() throws {
        let merged = try settings.merged(commandLine: ["--", "--interval"], environment: ["PGNODE_INTERVAL": "5"])
        #expect(merged.arguments == ["--interval=5", "--", "--interval"])
    }

    @Test("a usage error about a flag a variable set names the variable; other flags are not blamed")
    func blame() throws {
        let merged = try settings.merged(
            commandLine: ["--log-level", "x"],
            environment: ["PGNODE_INTERVAL": "0", "PGNODE_ENDPOINT_TOKEN_FILE": "/t"])
        #expect(
            merged.variable(blamedBy: "--interval must be between 0.1 and 86400.0 seconds, not 0.0")
                == "PGNODE_INTERVAL")
        #expect(
            merged.variable(blamedBy: "The value '/t' is invalid for '--endpoint-token-file <path>'")
                == "PGNODE_ENDPOINT_TOKEN_FILE")
        #expect(merged.variable(blamedBy: "The value 'x' is invalid for '--log-level <log-level>'") == nil)
        #expect(merged.variable(blamedBy: "--interval-x is unknown") == nil)
    }

    @Test("variables with the prefix that name no flag are reported, sorted")
    func unknown() {
        let environment = ["PGNODE_INTERVAL": "5", "PGNODE_INTERAVL": "5", "PGNODE_NO_GZIP": "1", "PATH": "/bin"]
        #expect(settings.unknownVariables(environment) == ["PGNODE_INTERAVL", "PGNODE_NO_GZIP"])
    }

    @Test("a description that is not the parser's JSON is an error")
    func badDescription() {
        #expect(throws: EnvironmentSettingsError.self) { try EnvironmentSettings(toolInfo: "{") }
        #expect(throws: EnvironmentSettingsError.self) { try EnvironmentSettings(toolInfo: "{\"command\": {}}") }
    }
}
