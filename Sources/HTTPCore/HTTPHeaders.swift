/// Header fields in the order they were received, with case-insensitive lookup by name.
///
/// Order and duplicates are kept because they matter: `Set-Cookie` repeats, and list-valued fields
/// are only meaningful in order. Lookup is a linear scan, which beats hashing for the dozen fields a
/// request usually carries.
public struct HTTPHeaders: Sendable, Equatable, RandomAccessCollection, ExpressibleByDictionaryLiteral {
    /// One header field as received or to be sent.
    public struct Field: Sendable, Equatable {
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    private var fields: [Field]

    public init() { fields = [] }

    /// Empty, with room for `capacity` fields before the storage grows.
    init(capacity: Int) {
        fields = []
        fields.reserveCapacity(capacity)
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        fields = elements.map { Field(name: $0.0, value: $0.1) }
    }

    public var startIndex: Int { fields.startIndex }
    public var endIndex: Int { fields.endIndex }
    public subscript(position: Int) -> Field { fields[position] }

    /// The first value of the field called `name` (any case), or `nil`.
    public subscript(name: String) -> String? {
        fields.first { HTTPHeaders.namesMatch($0.name, name) }?.value
    }

    /// Every value of the field called `name`, in order.
    public func values(for name: String) -> [String] {
        fields.filter { HTTPHeaders.namesMatch($0.name, name) }.map(\.value)
    }

    public func contains(_ name: String) -> Bool { self[name] != nil }

    /// Appends a field, keeping any earlier fields of the same name.
    public mutating func add(_ name: String, _ value: String) {
        fields.append(Field(name: name, value: value))
    }

    /// Replaces every field called `name` with one field holding `value`.
    public mutating func set(_ name: String, _ value: String) {
        remove(name)
        add(name, value)
    }

    public mutating func remove(_ name: String) {
        fields.removeAll { HTTPHeaders.namesMatch($0.name, name) }
    }

    /// The comma-separated elements of every `name` field, trimmed and ASCII-lowercased, empty ones dropped.
    ///
    /// This is how list-valued fields such as `Connection` and `Transfer-Encoding` are read: several
    /// fields of one name are the same as one field with the values joined by commas (RFC 9110 §5.3).
    func listElements(for name: String) -> [String] {
        var values: [String] = []
        for field in fields where HTTPHeaders.namesMatch(field.name, name) { values.append(field.value) }
        return HTTPHeaders.listElements(of: values)
    }

    /// The elements of list-valued field values, trimmed and ASCII-lowercased, empty ones dropped.
    ///
    /// Only ASCII letters change case (`ASCIICase`): with Unicode case mapping `chun\u{212A}ed` would
    /// become `chunked`. Callers that expect tokens check them with `ASCIICase.isToken`.
    static func listElements(of values: [String]) -> [String] {
        var elements: [String] = []
        for value in values {
            for element in value.split(separator: ",") {
                let trimmed = element.trimmingOptionalWhitespace()
                if !trimmed.isEmpty { elements.append(ASCIICase.lowercased(trimmed)) }
            }
        }
        return elements
    }

    /// ASCII case-insensitive comparison without allocating; field names are ASCII tokens.
    static func namesMatch(_ a: String, _ b: String) -> Bool { ASCIICase.equal(a, b) }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and horizontal tabs (HTTP's "OWS").
    func trimmingOptionalWhitespace() -> String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice.removeFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice.removeLast() }
        return String(slice)
    }
}
