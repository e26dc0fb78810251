import Foundation

/// A group of options declared once: each stored property is an option whose default is the
/// property's initial value. Command-line flags (`--init-r`) and YAML keys (`init_r` or `init-r`)
/// come from the property names; a nested `Settings` property (like `LoRATargeting`) contributes its
/// own options under their own names.
public protocol Settings: Codable {
    init()
    /// One line of help per property name.
    static var help: [String: String] { get }
    /// Other accepted spellings: alias (kebab-case) → property name.
    static var aliases: [String: String] { get }
}

extension Settings {
    public static var aliases: [String: String] { [:] }
}

/// A value an option can hold, parsed from its text on the command line or in YAML.
public protocol SettingValue {
    /// The value as JSON (for decoding), or nil when `text` is not one.
    static func parse(_ text: String) -> Any?
    static var typeName: String { get }
}

extension Int: SettingValue {
    public static func parse(_ t: String) -> Any? { Int(t) }
    public static var typeName: String { "integer" }
}
extension UInt64: SettingValue {
    public static func parse(_ t: String) -> Any? { UInt64(t) }
    public static var typeName: String { "non-negative integer" }
}
extension Float: SettingValue {
    public static func parse(_ t: String) -> Any? { Float(t).flatMap { $0.isFinite ? Double(t) : nil } }
    public static var typeName: String { "number" }
}
extension Double: SettingValue {
    public static func parse(_ t: String) -> Any? { Double(t).flatMap { $0.isFinite ? $0 : nil } }
    public static var typeName: String { "number" }
}
extension Bool: SettingValue {
    public static func parse(_ t: String) -> Any? {
        ["true", "yes", "on", "1"].contains(t.lowercased())
            ? true : ["false", "no", "off", "0"].contains(t.lowercased()) ? false : nil
    }
    public static var typeName: String { "true or false" }
}
extension String: SettingValue {
    public static func parse(_ t: String) -> Any? { t }
    public static var typeName: String { "text" }
}
extension Array: SettingValue where Element == String {
    public static func parse(_ t: String) -> Any? {
        t.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
    public static var typeName: String { "comma-separated list" }
}
extension Optional: SettingValue where Wrapped: SettingValue {
    public static func parse(_ t: String) -> Any? { Wrapped.parse(t) }
    public static var typeName: String { Wrapped.typeName }
}

/// An option with a fixed set of values, declared as a `String`-backed enum: it parses from the same text
/// (`scale`, `ranks`) and encodes to it, so files and fingerprints read as they did when the option was text.
public protocol SettingChoice: SettingValue, CaseIterable, Codable, RawRepresentable where RawValue == String {}

extension SettingChoice {
    public static func parse(_ t: String) -> Any? { Self(rawValue: t) == nil ? nil : t }
    public static var typeName: String { "one of " + allCases.map(\.rawValue).joined(separator: ", ") }
}

/// One option of a `Settings` type.
public struct SettingInfo: @unchecked Sendable {
    /// Property path inside the settings value, e.g. `["lora", "r"]`.
    public let path: [String]
    /// Flag / key name in kebab case (`init-r`).
    public let key: String
    public let aliases: [String]
    public let help: String
    /// The default as text ("none" when there is none).
    public let defaultText: String
    public let typeName: String
    /// A Boolean option: a bare `--flag` sets it.
    public let isFlag: Bool
    /// The option's value as JSON, or nil when `text` is not one of its type.
    public let parse: (String) -> Any?
}

public struct SettingsError: Error, CustomStringConvertible {
    public var message: String
    public init(_ m: String) { message = m }
    public var description: String { message }
}

public enum SettingsTable {
    /// `initR` → `init-r`.
    public static func kebab(_ name: String) -> String {
        var out = ""
        for c in name {
            if c.isUppercase { out += "-" + c.lowercased() } else { out.append(c) }
        }
        return out
    }

    /// Normalises a flag or key as users write it (`init_r`, `--init-r`, `initR`) to kebab case.
    public static func normalise(_ key: String) -> String {
        var k = key
        while k.hasPrefix("-") { k.removeFirst() }
        return kebab(k).replacingOccurrences(of: "_", with: "-")
    }

    /// Every option of `type`, nested groups flattened, in declaration order.
    public static func options(of type: Settings.Type) -> [SettingInfo] {
        options(of: type, value: type.init(), path: [], inherited: [:], inheritedHelp: [:])
    }

    /// `inherited` and `inheritedHelp`: aliases and help an enclosing type declares for this nested group's
    /// properties (an enclosing type's help wins, so a method can say what a shared option means for it).
    static func options(
        of type: Settings.Type, value: Any, path: [String], inherited: [String: String],
        inheritedHelp: [String: String]
    ) -> [SettingInfo] {
        let aliasMap = type.aliases.merging(inherited) { $1 }
        let helpMap = type.help.merging(inheritedHelp) { $1 }
        var out: [SettingInfo] = []
        for child in Mirror(reflecting: value).children {
            guard let label = child.label else { continue }
            let vt = Swift.type(of: child.value)
            if let nested = vt as? Settings.Type {
                out += options(
                    of: nested, value: child.value, path: path + [label], inherited: aliasMap,
                    inheritedHelp: helpMap)
                continue
            }
            guard let st = vt as? SettingValue.Type else {
                preconditionFailure("\(type).\(label): \(vt) is not a SettingValue")
            }
            let key = kebab(label)
            let aliases = aliasMap.filter { $0.value == label }.map(\.key).sorted()
            let choice = (child.value as? any RawRepresentable)?.rawValue as? String
            let text = (child.value as? [String])?.joined(separator: ",") ?? choice ?? describe(child.value)
            out.append(
                SettingInfo(
                    path: path + [label], key: key, aliases: aliases, help: helpMap[label] ?? "",
                    defaultText: text, typeName: st.typeName, isFlag: vt == Bool.self,
                    parse: { st.parse($0) }))
        }
        return out
    }

    /// Text of a value, with optionals unwrapped ("none" for nil).
    static func describe(_ v: Any) -> String {
        let m = Mirror(reflecting: v)
        if m.displayStyle == .optional { return m.children.first.map { describe($0.value) } ?? "none" }
        return "\(v)"
    }

    /// Decodes `type` from its defaults with `values` (option key → text) applied. Keys must be
    /// options of `type` (after `normalise`); errors name the option and what it expects.
    public static func decode<T: Settings>(_ type: T.Type, values: [String: String]) throws -> T {
        let table = options(of: type)
        var json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(T())) as! [String: Any]
        for (rawKey, text) in values {
            let k = normalise(rawKey)
            guard let info = table.first(where: { $0.key == k || $0.aliases.contains(k) }) else {
                throw SettingsError("unknown option --\(k)")
            }
            guard let v = info.parse(text) else {
                throw SettingsError("--\(info.key): expected \(info.typeName), got \"\(text)\"")
            }
            set(&json, info.path, v)
        }
        do {
            return try JSONDecoder().decode(T.self, from: JSONSerialization.data(withJSONObject: json))
        } catch {
            throw SettingsError("options of \(T.self) do not decode: \(error)")
        }
    }

    static func set(_ obj: inout [String: Any], _ path: [String], _ v: Any) {
        if path.count == 1 {
            obj[path[0]] = v
            return
        }
        var inner = obj[path[0]] as? [String: Any] ?? [:]
        set(&inner, Array(path.dropFirst()), v)
        obj[path[0]] = inner
    }

    /// Turns a YAML/JSON scalar or list into an option's text (lists are joined with commas).
    public static func text(of value: Any) -> String {
        if let a = value as? [Any] { return a.map { text(of: $0) }.joined(separator: ",") }
        if let b = value as? Bool { return b ? "true" : "false" }
        return "\(value)"
    }

    /// Help lines: `--key VALUE   help (default: …)`.
    public static func helpLines(_ table: [SettingInfo], indent: String = "  ") -> [String] {
        table.map { o in
            let placeholder =
                o.typeName == "comma-separated list"
                ? "a,b,…"
                : o.typeName == "text" || o.typeName.hasPrefix("one of ") ? "text" : "n"
            let name = "--" + o.key + (o.isFlag ? "" : " <\(placeholder)>")
            let pad = name.count < 30 ? String(repeating: " ", count: 30 - name.count) : " "
            let alias = o.aliases.isEmpty ? "" : " (also --" + o.aliases.joined(separator: ", --") + ")"
            let dflt = o.help.contains("[none") ? "" : " [default: \(o.defaultText)]"
            return indent + name + pad + o.help + alias + dflt
        }
    }
}
