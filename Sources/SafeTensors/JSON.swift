/// A minimal strict JSON value and parser, used for safetensors headers: unlike Foundation's parser it
/// reports duplicate object keys (a hostile header may name a tensor twice) and positions of errors.
public indirect enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    /// Keys in file order.
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let kv) = self { return kv.first { $0.0 == key }?.1 }
        return nil
    }
}

public struct JSONParseError: Error, CustomStringConvertible {
    public var message: String
    public var offset: Int
    public var description: String { "\(message) at byte \(offset)" }
}

/// Parses UTF-8 JSON bytes. Rejects trailing garbage, duplicate keys (when `rejectDuplicateKeys`)
/// and nesting deeper than 64.
public struct JSONParser {
    private let b: UnsafeBufferPointer<UInt8>
    private var i = 0
    private let rejectDuplicates: Bool

    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>, rejectDuplicateKeys: Bool = true) throws -> JSONValue
    {
        var p = JSONParser(b: bytes, rejectDuplicates: rejectDuplicateKeys)
        let v = try p.value(depth: 0)
        p.skipWhitespace()
        if p.i != bytes.count { throw JSONParseError(message: "unexpected trailing data", offset: p.i) }
        return v
    }

    public static func parse(_ bytes: [UInt8], rejectDuplicateKeys: Bool = true) throws -> JSONValue {
        try bytes.withUnsafeBufferPointer { try parse($0, rejectDuplicateKeys: rejectDuplicateKeys) }
    }

    private init(b: UnsafeBufferPointer<UInt8>, rejectDuplicates: Bool) {
        self.b = b
        self.rejectDuplicates = rejectDuplicates
    }

    private mutating func skipWhitespace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    private func err(_ m: String) -> JSONParseError { JSONParseError(message: m, offset: i) }

    private mutating func value(depth: Int) throws -> JSONValue {
        if depth > 64 { throw err("JSON nested too deeply") }
        skipWhitespace()
        guard i < b.count else { throw err("unexpected end of JSON") }
        switch b[i] {
        case UInt8(ascii: "{"):
            i += 1
            var kv: [(String, JSONValue)] = []
            var seen = Set<String>()
            skipWhitespace()
            if i < b.count, b[i] == UInt8(ascii: "}") {
                i += 1
                return .object(kv)
            }
            while true {
                skipWhitespace()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw err("expected a string key") }
                let k = try string()
                if rejectDuplicates, !seen.insert(k).inserted { throw err("duplicate key \"\(k)\"") }
                skipWhitespace()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw err("expected ':'") }
                i += 1
                kv.append((k, try value(depth: depth + 1)))
                skipWhitespace()
                guard i < b.count else { throw err("unexpected end of JSON") }
                if b[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                if b[i] == UInt8(ascii: "}") {
                    i += 1
                    return .object(kv)
                }
                throw err("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            i += 1
            var arr: [JSONValue] = []
            skipWhitespace()
            if i < b.count, b[i] == UInt8(ascii: "]") {
                i += 1
                return .array(arr)
            }
            while true {
                arr.append(try value(depth: depth + 1))
                skipWhitespace()
                guard i < b.count else { throw err("unexpected end of JSON") }
                if b[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                if b[i] == UInt8(ascii: "]") {
                    i += 1
                    return .array(arr)
                }
                throw err("expected ',' or ']'")
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        default:
            return .number(try number())
        }
    }

    private mutating func literal(_ s: StaticString) throws {
        let n = s.utf8CodeUnitCount
        guard i + n <= b.count else { throw err("invalid literal") }
        for k in 0..<n where b[i + k] != s.utf8Start[k] { throw err("invalid literal") }
        i += n
    }

    private mutating func number() throws -> Double {
        let start = i
        while i < b.count, let c = Optional(b[i]),
            (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+") || c == UInt8(ascii: ".")
                || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
        {
            i += 1
        }
        guard i > start, let v = Double(String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self))
        else {
            i = start
            throw err("invalid JSON value")
        }
        return v
    }

    private mutating func hex4() throws -> UInt32 {
        guard i + 4 <= b.count else { throw err("bad \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            i += 1
            v <<= 4
            switch c {
            case 0x30...0x39: v |= UInt32(c - 0x30)
            case 0x41...0x46: v |= UInt32(c - 0x41 + 10)
            case 0x61...0x66: v |= UInt32(c - 0x61 + 10)
            default: throw err("bad \\u escape")
            }
        }
        return v
    }

    private mutating func string() throws -> String {
        i += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard i < b.count else { throw err("unterminated string") }
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                break
            }
            if c < 0x20 { throw err("control character in string") }
            if c != UInt8(ascii: "\\") {
                out.append(c)
                i += 1
                continue
            }
            i += 1
            guard i < b.count else { throw err("unterminated string") }
            let e = b[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var cp = try hex4()
                if cp >= 0xD800 && cp < 0xDC00, i + 6 <= b.count, b[i] == UInt8(ascii: "\\"),
                    b[i + 1] == UInt8(ascii: "u")
                {
                    i += 2
                    let lo = try hex4()
                    cp = (lo >= 0xDC00 && lo < 0xE000) ? 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00) : 0xFFFD
                }
                out.append(contentsOf: Array(String(Character(Unicode.Scalar(cp) ?? "\u{FFFD}")).utf8))
            default: throw err("bad escape")
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw err("invalid UTF-8 in string") }
        return s
    }
}
