/// Porter's suffix-stripping stemmer as NLTK implements it in its default mode (`NLTK_EXTENSIONS`), which is what
/// `rouge-score` stems with: the 1980 algorithm plus NLTK's irregular forms, its `ies`/`ied` rule for four-letter
/// words, `y` → `i` only after a consonant that is not the whole stem, the extra `fulli` and `logi` rules and words of
/// two letters or fewer left alone. Words are lowercase ASCII letters and digits (what ROUGE tokenises to).
public enum PorterStemmer {
    typealias Word = [UInt8]

    static let irregular: [String: String] = [
        "sky": "sky", "skies": "sky", "dying": "die", "lying": "lie", "tying": "tie", "news": "news",
        "innings": "inning", "inning": "inning", "outings": "outing", "outing": "outing", "cannings": "canning",
        "canning": "canning", "howe": "howe", "proceed": "proceed", "exceed": "exceed", "succeed": "succeed",
    ]

    public static func stem(_ word: String) -> String {
        let lower = word.lowercased()
        if let form = irregular[lower] { return form }
        guard lower.utf8.count > 2 else { return lower }
        var stem = Word(lower.utf8)
        stem = step1a(stem)
        stem = step1b(stem)
        stem = step1c(stem)
        stem = step2(stem)
        stem = step3(stem)
        stem = step4(stem)
        stem = step5a(stem)
        stem = step5b(stem)
        return String(decoding: stem, as: UTF8.self)
    }

    // MARK: Letters

    static func isVowel(_ letter: UInt8) -> Bool { "aeiou".utf8.contains(letter) }

    /// Consonant (true) or vowel per letter: `y` is a consonant at the start or after a vowel.
    static func consonants(_ word: some Collection<UInt8>) -> [Bool] {
        var flags: [Bool] = []
        flags.reserveCapacity(word.count)
        for letter in word {
            if isVowel(letter) {
                flags.append(false)
            } else if letter == UInt8(ascii: "y") {
                flags.append(flags.last.map { !$0 } ?? true)
            } else {
                flags.append(true)
            }
        }
        return flags
    }

    /// m in [C](VC){m}[V]: how many times a vowel is followed by a consonant.
    static func measure(_ stem: some Collection<UInt8>) -> Int {
        let flags = consonants(stem)
        var count = 0
        for index in flags.indices.dropFirst() where flags[index] && !flags[index - 1] { count += 1 }
        return count
    }

    static func containsVowel(_ stem: Word) -> Bool { consonants(stem).contains(false) }

    /// *d: ends in two equal consonants.
    static func endsDoubleConsonant(_ word: Word) -> Bool {
        word.count >= 2 && word[word.count - 1] == word[word.count - 2] && consonants(word).last == true
    }

    /// *o: ends consonant-vowel-consonant, the last not w, x or y; NLTK also counts a two-letter vowel-consonant word.
    static func endsCVC(_ word: Word) -> Bool {
        let flags = consonants(word)
        let n = word.count
        if n >= 3 && flags[n - 3] && !flags[n - 2] && flags[n - 1] && !"wxy".utf8.contains(word[n - 1]) { return true }
        return n == 2 && !flags[0] && flags[1]
    }

    static func ends(_ word: Word, _ suffix: String) -> Bool {
        let bytes = Array(suffix.utf8)
        return word.count >= bytes.count && word.suffix(bytes.count).elementsEqual(bytes)
    }

    static func dropping(_ word: Word, _ count: Int) -> Word { Array(word.dropLast(count)) }

    // MARK: Rules

    /// A rule: a suffix (`*d` for a double consonant), its replacement and the condition on the stem before it.
    struct Rule {
        let suffix: String
        let replacement: String
        let condition: ((Word) -> Bool)?
    }

    /// The first rule whose suffix the word ends with decides: replaced when its condition holds, else unchanged.
    static func apply(_ word: Word, _ rules: [Rule]) -> Word {
        for rule in rules {
            if rule.suffix == "*d" {
                guard endsDoubleConsonant(word) else { continue }
                let stem = dropping(word, 2)
                return rule.condition?(stem) ?? true ? stem + Word(rule.replacement.utf8) : word
            }
            guard ends(word, rule.suffix) else { continue }
            let stem = dropping(word, rule.suffix.utf8.count)
            return rule.condition?(stem) ?? true ? stem + Word(rule.replacement.utf8) : word
        }
        return word
    }

    static func positive(_ stem: Word) -> Bool { measure(stem) > 0 }

    static func step1a(_ word: Word) -> Word {
        if ends(word, "ies") && word.count == 4 { return dropping(word, 3) + Word("ie".utf8) }
        return apply(
            word,
            [
                Rule(suffix: "sses", replacement: "ss", condition: nil),
                Rule(suffix: "ies", replacement: "i", condition: nil),
                Rule(suffix: "ss", replacement: "ss", condition: nil),
                Rule(suffix: "s", replacement: "", condition: nil),
            ])
    }

    static func step1b(_ word: Word) -> Word {
        if ends(word, "ied") { return dropping(word, 3) + Word((word.count == 4 ? "ie" : "i").utf8) }
        if ends(word, "eed") {
            let stem = dropping(word, 3)
            return measure(stem) > 0 ? stem + Word("ee".utf8) : word
        }
        var intermediate: Word?
        for suffix in ["ed", "ing"] where ends(word, suffix) {
            let stem = dropping(word, suffix.utf8.count)
            if containsVowel(stem) {
                intermediate = stem
                break
            }
        }
        guard let stem = intermediate, let last = stem.last else { return word }
        return apply(
            stem,
            [
                Rule(suffix: "at", replacement: "ate", condition: nil),
                Rule(suffix: "bl", replacement: "ble", condition: nil),
                Rule(suffix: "iz", replacement: "ize", condition: nil),
                Rule(
                    suffix: "*d", replacement: String(UnicodeScalar(last)),
                    condition: { _ in !"lsz".utf8.contains(last) }),
                Rule(suffix: "", replacement: "e", condition: { measure($0) == 1 && endsCVC($0) }),
            ])
    }

    static func step1c(_ word: Word) -> Word {
        apply(word, [Rule(suffix: "y", replacement: "i", condition: { $0.count > 1 && consonants($0).last == true })])
    }

    static func step2(_ word: Word) -> Word {
        if ends(word, "alli") && positive(dropping(word, 4)) { return step2(dropping(word, 4) + Word("al".utf8)) }
        let pairs: [(String, String)] = [
            ("ational", "ate"), ("tional", "tion"), ("enci", "ence"), ("anci", "ance"), ("izer", "ize"), ("bli", "ble"),
            ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous"), ("ization", "ize"), ("ation", "ate"),
            ("ator", "ate"), ("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous"),
            ("aliti", "al"), ("iviti", "ive"), ("biliti", "ble"), ("fulli", "ful"),
        ]
        var rules = pairs.map { Rule(suffix: $0.0, replacement: $0.1, condition: positive) }
        // NLTK measures "logi" → "log" on the word without its last three letters.
        rules.append(Rule(suffix: "logi", replacement: "log", condition: { _ in positive(dropping(word, 3)) }))
        return apply(word, rules)
    }

    static func step3(_ word: Word) -> Word {
        let pairs: [(String, String)] = [
            ("icate", "ic"), ("ative", ""), ("alize", "al"), ("iciti", "ic"), ("ical", "ic"), ("ful", ""), ("ness", ""),
        ]
        return apply(word, pairs.map { Rule(suffix: $0.0, replacement: $0.1, condition: positive) })
    }

    static func step4(_ word: Word) -> Word {
        let greaterThanOne: (Word) -> Bool = { measure($0) > 1 }
        var rules = ["al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent"].map {
            Rule(suffix: $0, replacement: "", condition: greaterThanOne)
        }
        rules.append(
            Rule(suffix: "ion", replacement: "", condition: { measure($0) > 1 && "st".utf8.contains($0.last ?? 0) }))
        rules += ["ou", "ism", "ate", "iti", "ous", "ive", "ize"].map {
            Rule(suffix: $0, replacement: "", condition: greaterThanOne)
        }
        return apply(word, rules)
    }

    static func step5a(_ word: Word) -> Word {
        guard ends(word, "e") else { return word }
        let stem = dropping(word, 1)
        let m = measure(stem)
        return m > 1 || (m == 1 && !endsCVC(stem)) ? stem : word
    }

    static func step5b(_ word: Word) -> Word {
        apply(word, [Rule(suffix: "ll", replacement: "l", condition: { _ in measure(dropping(word, 1)) > 1 })])
    }
}
