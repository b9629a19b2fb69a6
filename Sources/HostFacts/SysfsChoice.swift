/// A sysfs setting that lists its choices and brackets the one in force, as
/// `/sys/kernel/mm/transparent_hugepage/enabled` does: `always [madvise] never`.
public struct SysfsChoice: Sendable, Equatable {
    /// Every choice the kernel offers, in its order, without brackets.
    public var choices: [String]
    /// The choice in force.
    public var selected: String

    /// A choice.
    public init(choices: [String], selected: String) {
        self.choices = choices
        self.selected = selected
    }

    /// The most choices accepted: the kernel's longest such list has six (`shmem_enabled`).
    public static let maxChoices = 32

    /// Parses the kernel's text: words separated by white space, exactly one of them in
    /// brackets. Anything else (no bracketed word, two, an empty `[]`, a bracket inside a word,
    /// more than `maxChoices` words) is nil: pgnode does not guess which one is in force.
    public static func parse(_ text: String) -> SysfsChoice? {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
        guard !words.isEmpty, words.count <= maxChoices else { return nil }
        var choices: [String] = []
        var selected: String? = nil
        for word in words {
            if word.first == "[" && word.last == "]" && word.count > 2 {
                let inner = word.dropFirst().dropLast()
                guard selected == nil, !inner.contains("["), !inner.contains("]") else { return nil }
                selected = String(inner)
                choices.append(String(inner))
            } else {
                guard !word.contains("["), !word.contains("]") else { return nil }
                choices.append(String(word))
            }
        }
        guard let selected else { return nil }
        return SysfsChoice(choices: choices, selected: selected)
    }
}
