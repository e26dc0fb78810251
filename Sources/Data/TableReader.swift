import Foundation
import SafeTensors

/// One record of a table file: its fields by column name and the line it starts on.
public struct Record: Sendable {
    public var fields: [String: String]
    /// 1-based line number where the record starts (the header is line 1 for CSV/TSV).
    public var line: Int
    /// True when some bytes were not valid UTF-8 and were replaced with U+FFFD.
    public var hadInvalidUTF8: Bool
}

public struct DataError: Error, CustomStringConvertible {
    public var message: String
    public init(_ m: String) { message = m }
    public var description: String { message }
}

/// Reads CSV (RFC 4180: quoted fields with embedded separators, doubled quotes and newlines), TSV
/// and JSONL, byte by byte, so invalid UTF-8 is replaced per field and counted instead of failing.
public enum TableReader {
    public enum Format: String, Sendable, Codable { case csv, tsv, jsonl }

    public static func format(of path: String) -> Format {
        let l = path.lowercased()
        if l.hasSuffix(".tsv") || l.hasSuffix(".tab") { return .tsv }
        if l.hasSuffix(".jsonl") || l.hasSuffix(".ndjson") || l.hasSuffix(".json") { return .jsonl }
        return .csv
    }

    /// Reads every record. `malformed` receives line numbers of records that could not be parsed
    /// (wrong field count, invalid JSON) with a reason.
    public static func read(
        path: String, format: Format? = nil
    ) throws -> (columns: [String], records: [Record], malformed: [(Int, String)]) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw DataError("\(path): no such file")
        }
        guard !isDir.boolValue else { throw DataError("\(path): is a directory, not a CSV/TSV/JSONL file") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError("\(path): cannot read (permissions?)")
        }
        let head = data.prefix(8192)
        if head.filter({ $0 < 0x09 || (0x0E..<0x20).contains($0) }).count > max(head.count / 100, 8) {
            throw DataError(
                "\(path): looks like a binary file (control bytes in its first 8 KiB), not CSV/TSV/JSONL text")
        }
        return try parse([UInt8](data), format: format ?? Self.format(of: path), name: path)
    }

    public static func parse(
        _ bytes: [UInt8], format: Format, name: String
    ) throws -> (columns: [String], records: [Record], malformed: [(Int, String)]) {
        switch format {
        case .jsonl: return try parseJSONL(bytes, name: name)
        case .csv: return try parseDelimited(bytes, sep: UInt8(ascii: ","), name: name)
        case .tsv: return try parseDelimited(bytes, sep: UInt8(ascii: "\t"), name: name)
        }
    }

    static func decode(_ b: ArraySlice<UInt8>) -> (String, Bool) {
        if let s = String(validating: b, as: UTF8.self) { return (s, false) }
        return (String(decoding: b, as: UTF8.self), true)
    }

    static func parseDelimited(
        _ b: [UInt8], sep: UInt8, name: String
    ) throws -> (columns: [String], records: [Record], malformed: [(Int, String)]) {
        var rows: [([String], Int, Bool)] = []
        var fields: [String] = []
        var field: [UInt8] = []
        var bad = false
        var line = 1
        var startLine = 1
        var i = 0
        var inQuotes = false
        var wasQuoted = false
        let quote = UInt8(ascii: "\"")
        let nl = UInt8(ascii: "\n")
        let cr = UInt8(ascii: "\r")
        var start = 0
        if b.count >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF { start = 3 }  // BOM
        i = start
        func endField() {
            let (s, invalid) = decode(field[...])
            fields.append(s)
            bad = bad || invalid
            field.removeAll(keepingCapacity: true)
            wasQuoted = false
        }
        func endRecord() {
            endField()
            if !(fields.count == 1 && fields[0].isEmpty && !wasQuoted) { rows.append((fields, startLine, bad)) }
            fields = []
            bad = false
        }
        while i < b.count {
            let c = b[i]
            if inQuotes {
                if c == quote {
                    if i + 1 < b.count && b[i + 1] == quote {
                        field.append(quote)
                        i += 2
                        continue
                    }
                    inQuotes = false
                    i += 1
                    continue
                }
                if c == nl { line += 1 }
                field.append(c)
                i += 1
                continue
            }
            if c == quote && field.isEmpty && !wasQuoted && sep != UInt8(ascii: "\t") {
                inQuotes = true
                wasQuoted = true
                i += 1
                continue
            }
            if c == sep {
                endField()
                i += 1
                continue
            }
            if c == cr && i + 1 < b.count && b[i + 1] == nl {
                i += 1
                continue
            }
            if c == nl {
                endRecord()
                line += 1
                startLine = line
                i += 1
                continue
            }
            field.append(c)
            i += 1
        }
        if inQuotes { throw DataError("\(name): line \(startLine): a quoted field is never closed") }
        if !field.isEmpty || !fields.isEmpty { endRecord() }
        guard let header = rows.first else { throw DataError("\(name): the file is empty") }
        let columns = header.0.map { $0.trimmingCharacters(in: .whitespaces) }
        if let twice = Dictionary(grouping: columns, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw DataError("\(name): line \(header.1): the header names column \"\(twice)\" more than once")
        }
        var records: [Record] = []
        var malformed: [(Int, String)] = []
        for (f, ln, invalid) in rows.dropFirst() {
            if f.count != columns.count {
                malformed.append((ln, "\(f.count) fields, header has \(columns.count)"))
                continue
            }
            records.append(
                Record(fields: Dictionary(uniqueKeysWithValues: zip(columns, f)), line: ln, hadInvalidUTF8: invalid))
        }
        return (columns, records, malformed)
    }

    static func parseJSONL(
        _ b: [UInt8], name: String
    ) throws -> (columns: [String], records: [Record], malformed: [(Int, String)]) {
        var records: [Record] = []
        var malformed: [(Int, String)] = []
        var columns: [String] = []
        var seen = Set<String>()
        for (n, lineBytes) in b.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            var lb = lineBytes
            if lb.last == UInt8(ascii: "\r") { lb = lb.dropLast() }
            if lb.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            let (s, invalid) = decode(lb)
            let value: JSONValue
            do { value = try JSONParser.parse(Array(s.utf8), rejectDuplicateKeys: false) } catch {
                malformed.append((n + 1, "invalid JSON (\(error))"))
                continue
            }
            guard case .object(let kv) = value else {
                malformed.append((n + 1, "a JSON value that is not an object"))
                continue
            }
            var f: [String: String] = [:]
            for (k, v) in kv {
                if !seen.contains(k) {
                    seen.insert(k)
                    columns.append(k)
                }
                switch v {
                case .string(let x): f[k] = x
                case .number(let x): f[k] = x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : String(x)
                case .bool(let x): f[k] = x ? "true" : "false"
                case .null: continue
                // A leading NUL marks an array or object: Dataset refuses it in a column it uses.
                case .array: f[k] = "\u{0}an array"
                default: f[k] = "\u{0}an object"
                }
            }
            records.append(Record(fields: f, line: n + 1, hadInvalidUTF8: invalid))
        }
        return (columns, records, malformed)
    }
}
