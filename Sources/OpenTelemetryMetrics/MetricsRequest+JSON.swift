import Foundation

extension MetricsRequest {
    /// Decodes the OTLP/JSON encoding of `ExportMetricsServiceRequest` (`Content-Type:
    /// application/json`): proto3 JSON with lowerCamelCase keys, 64-bit integers as strings or
    /// numbers, doubles as numbers or `"NaN"`/`"Infinity"`/`"-Infinity"`, bytes in base64. Unknown keys
    /// are ignored, as OTLP requires; a known key with the wrong type is an error naming its path
    /// (`resourceMetrics[0].scopeMetrics[0].metrics[2].gauge.dataPoints[1].timeUnixNano: …`).
    package static func decode(json: [UInt8], limits: OTLPLimits = .default) throws(OTLPError) -> MetricsRequest {
        guard json.count <= limits.maximumMessageBytes else {
            throw OTLPError(
                .limitExceeded, at: nil, "the body is \(json.count) bytes; at most \(limits.maximumMessageBytes)")
        }
        let document: Any
        do {
            document = try JSONSerialization.jsonObject(with: Data(json), options: [])
        } catch {
            throw OTLPError(.malformed, at: nil, "the body is not valid JSON")
        }
        var decoder = JSONMetricsDecoder(limits: limits)
        return try decoder.request(document)
    }
}

/// One JSON request's decoding: the limits and the running point count.
private struct JSONMetricsDecoder {
    let limits: OTLPLimits
    var points = 0

    func failure(_ path: String, _ reason: String, _ kind: OTLPError.Kind = .malformed) -> OTLPError {
        OTLPError(kind, at: nil, "\(path): \(reason)")
    }

    func object(_ value: Any?, _ path: String) throws(OTLPError) -> [String: Any]? {
        guard let value, !(value is NSNull) else { return nil }
        guard let object = value as? [String: Any] else { throw failure(path, "expected an object") }
        return object
    }

    func array(_ value: Any?, _ path: String) throws(OTLPError) -> [Any] {
        guard let value, !(value is NSNull) else { return [] }
        guard let array = value as? [Any] else { throw failure(path, "expected an array") }
        return array
    }

    func string(_ value: Any?, _ path: String) throws(OTLPError) -> String {
        guard let value, !(value is NSNull) else { return "" }
        guard let text = value as? String else { throw failure(path, "expected a string") }
        guard text.utf8.count <= limits.maximumStringBytes else {
            throw failure(path, "\(text.utf8.count) bytes; at most \(limits.maximumStringBytes)", .limitExceeded)
        }
        return text
    }

    /// An integer as proto3 JSON writes 64-bit ones: a decimal string, or a JSON number without a fraction.
    func integer<T: FixedWidthInteger>(_ value: Any?, _ path: String, as: T.Type) throws(OTLPError) -> T {
        guard let value, !(value is NSNull) else { return 0 }
        if let text = value as? String, let parsed = T(text) { return parsed }
        // An integral JSON number spells itself without a fraction; 1.5 or 1e30 do not fit.
        if let number = value as? NSNumber, let parsed = T(number.stringValue) { return parsed }
        throw failure(path, "expected an integer (a decimal string or number), found \(value)")
    }

    func double(_ value: Any?, _ path: String) throws(OTLPError) -> Double {
        guard let value, !(value is NSNull) else { return 0 }
        if let text = value as? String {
            switch text {
            case "NaN": return .nan
            case "Infinity": return .infinity
            case "-Infinity": return -.infinity
            default: if let parsed = Double(text), parsed.isFinite { return parsed }
            }
        } else if let number = value as? NSNumber, !(value is Bool) {
            return number.doubleValue
        }
        throw failure(path, "expected a number, found \(value)")
    }

    mutating func request(_ document: Any) throws(OTLPError) -> MetricsRequest {
        guard let root = try object(document, "the body") else { throw failure("the body", "expected an object") }
        var request = MetricsRequest()
        for (index, element) in try array(root["resourceMetrics"], "resourceMetrics").enumerated() {
            let path = "resourceMetrics[\(index)]"
            guard let resourceMetrics = try object(element, path) else { continue }
            var resource = MetricsRequest.ResourceMetrics()
            if let inner = try object(resourceMetrics["resource"], path + ".resource") {
                resource.attributes = try attributes(inner["attributes"], path + ".resource.attributes")
            }
            for (scopeIndex, scopeElement) in try array(resourceMetrics["scopeMetrics"], path + ".scopeMetrics")
                .enumerated()
            {
                let scopePath = path + ".scopeMetrics[\(scopeIndex)]"
                guard let scopeMetrics = try object(scopeElement, scopePath) else { continue }
                resource.scopes.append(try self.scope(scopeMetrics, scopePath))
            }
            request.resources.append(resource)
        }
        return request
    }

    mutating func scope(_ scopeMetrics: [String: Any], _ path: String) throws(OTLPError) -> MetricsRequest.ScopeMetrics
    {
        var scope = MetricsRequest.ScopeMetrics()
        if let inner = try object(scopeMetrics["scope"], path + ".scope") {
            scope.name = try string(inner["name"], path + ".scope.name")
            scope.version = try string(inner["version"], path + ".scope.version")
            scope.attributes = try attributes(inner["attributes"], path + ".scope.attributes")
        }
        for (index, element) in try array(scopeMetrics["metrics"], path + ".metrics").enumerated() {
            let metricPath = path + ".metrics[\(index)]"
            guard let metric = try object(element, metricPath) else { continue }
            scope.metrics.append(try self.metric(metric, metricPath))
        }
        return scope
    }

    mutating func metric(_ metric: [String: Any], _ path: String) throws(OTLPError) -> MetricsRequest.Metric {
        var pointCount = points
        defer { points = pointCount }
        let name = try string(metric["name"], path + ".name")
        if let gauge = try object(metric["gauge"], path + ".gauge") {
            return .init(name: name, data: .gauge(try numberPoints(gauge, path + ".gauge", points: &pointCount)))
        }
        if let sum = try object(metric["sum"], path + ".sum") {
            return .init(name: name, data: .sum(try numberPoints(sum, path + ".sum", points: &pointCount)))
        }
        if let histogram = try object(metric["histogram"], path + ".histogram") {
            var points: [MetricsRequest.HistogramPoint] = []
            try Self.dataPoints(histogram, path + ".histogram", limits: limits, points: &pointCount) {
                (point, pointPath) throws(OTLPError) in
                var decoded = MetricsRequest.HistogramPoint()
                decoded.attributes = try attributes(point["attributes"], pointPath + ".attributes")
                decoded.time = try integer(point["timeUnixNano"], pointPath + ".timeUnixNano", as: UInt64.self)
                decoded.count = try integer(point["count"], pointPath + ".count", as: UInt64.self)
                if point["sum"] != nil { decoded.sum = try double(point["sum"], pointPath + ".sum") }
                let counts = try array(point["bucketCounts"], pointPath + ".bucketCounts")
                let bounds = try array(point["explicitBounds"], pointPath + ".explicitBounds")
                guard counts.count <= limits.maximumBuckets + 1, bounds.count <= limits.maximumBuckets else {
                    throw failure(pointPath, "more than \(limits.maximumBuckets) buckets", .limitExceeded)
                }
                for (index, count) in counts.enumerated() {
                    decoded.bucketCounts.append(
                        try integer(count, pointPath + ".bucketCounts[\(index)]", as: UInt64.self))
                }
                for (index, bound) in bounds.enumerated() {
                    decoded.explicitBounds.append(try double(bound, pointPath + ".explicitBounds[\(index)]"))
                }
                decoded.flags = try integer(point["flags"], pointPath + ".flags", as: UInt32.self)
                points.append(decoded)
            }
            return .init(name: name, data: .histogram(points))
        }
        if let summary = try object(metric["summary"], path + ".summary") {
            var points: [MetricsRequest.SummaryPoint] = []
            try Self.dataPoints(summary, path + ".summary", limits: limits, points: &pointCount) {
                (point, pointPath) throws(OTLPError) in
                var decoded = MetricsRequest.SummaryPoint()
                decoded.attributes = try attributes(point["attributes"], pointPath + ".attributes")
                decoded.time = try integer(point["timeUnixNano"], pointPath + ".timeUnixNano", as: UInt64.self)
                decoded.count = try integer(point["count"], pointPath + ".count", as: UInt64.self)
                decoded.sum = try double(point["sum"], pointPath + ".sum")
                let quantiles = try array(point["quantileValues"], pointPath + ".quantileValues")
                guard quantiles.count <= limits.maximumBuckets else {
                    throw failure(pointPath, "more than \(limits.maximumBuckets) quantiles", .limitExceeded)
                }
                for (index, element) in quantiles.enumerated() {
                    let quantilePath = pointPath + ".quantileValues[\(index)]"
                    guard let quantile = try object(element, quantilePath) else { continue }
                    decoded.quantiles.append(
                        .init(
                            quantile: try double(quantile["quantile"], quantilePath + ".quantile"),
                            value: try double(quantile["value"], quantilePath + ".value")))
                }
                decoded.flags = try integer(point["flags"], pointPath + ".flags", as: UInt32.self)
                points.append(decoded)
            }
            return .init(name: name, data: .summary(points))
        }
        if let histogram = try object(metric["exponentialHistogram"], path + ".exponentialHistogram") {
            var count = 0
            try Self.dataPoints(histogram, path + ".exponentialHistogram", limits: limits, points: &pointCount) {
                (_, _) throws(OTLPError) in count += 1
            }
            return .init(name: name, data: .exponentialHistogram(points: count))
        }
        return .init(name: name, data: .none)
    }

    func numberPoints(_ data: [String: Any], _ path: String, points count: inout Int) throws(OTLPError)
        -> [MetricsRequest.NumberPoint]
    {
        var points: [MetricsRequest.NumberPoint] = []
        try Self.dataPoints(data, path, limits: limits, points: &count) { (point, pointPath) throws(OTLPError) in
            var decoded = MetricsRequest.NumberPoint()
            decoded.attributes = try attributes(point["attributes"], pointPath + ".attributes")
            decoded.time = try integer(point["timeUnixNano"], pointPath + ".timeUnixNano", as: UInt64.self)
            if point["asDouble"] != nil {
                decoded.value = .double(try double(point["asDouble"], pointPath + ".asDouble"))
            } else if point["asInt"] != nil {
                decoded.value = .integer(try integer(point["asInt"], pointPath + ".asInt", as: Int64.self))
            }
            decoded.flags = try integer(point["flags"], pointPath + ".flags", as: UInt32.self)
            points.append(decoded)
        }
        return points
    }

    static func dataPoints(
        _ data: [String: Any], _ path: String, limits: OTLPLimits, points: inout Int,
        _ body: ([String: Any], String) throws(OTLPError) -> Void
    ) throws(OTLPError) {
        func failure(_ path: String, _ reason: String, _ kind: OTLPError.Kind = .malformed) -> OTLPError {
            OTLPError(kind, at: nil, "\(path): \(reason)")
        }
        let elements = data["dataPoints"] ?? []
        guard let elements = elements as? [Any] else { throw failure(path + ".dataPoints", "expected an array") }
        for (index, element) in elements.enumerated() {
            let pointPath = path + ".dataPoints[\(index)]"
            guard points < limits.maximumPoints else {
                throw failure(pointPath, "more than \(limits.maximumPoints) data points in one request", .limitExceeded)
            }
            points += 1
            guard let point = element as? [String: Any] else { throw failure(pointPath, "expected an object") }
            try body(point, pointPath)
        }
    }

    func attributes(_ value: Any?, _ path: String) throws(OTLPError) -> [MetricsRequest.Attribute] {
        let elements = try array(value, path)
        guard elements.count <= limits.maximumAttributes else {
            throw failure(path, "more than \(limits.maximumAttributes) attributes", .limitExceeded)
        }
        var attributes: [MetricsRequest.Attribute] = []
        for (index, element) in elements.enumerated() {
            let attributePath = path + "[\(index)]"
            guard let keyValue = try object(element, attributePath) else { continue }
            let key = try string(keyValue["key"], attributePath + ".key")
            var text: String?
            if let any = try object(keyValue["value"], attributePath + ".value") {
                let valuePath = attributePath + ".value"
                if any["stringValue"] != nil {
                    text = try string(any["stringValue"], valuePath + ".stringValue")
                } else if let flag = any["boolValue"] {
                    guard let flag = flag as? Bool else {
                        throw failure(valuePath + ".boolValue", "expected true or false")
                    }
                    text = flag ? "true" : "false"
                } else if any["intValue"] != nil {
                    text = String(try integer(any["intValue"], valuePath + ".intValue", as: Int64.self))
                } else if any["doubleValue"] != nil {
                    text = MetricsRequest.text(of: try double(any["doubleValue"], valuePath + ".doubleValue"))
                } else if any["bytesValue"] != nil {
                    text = try string(any["bytesValue"], valuePath + ".bytesValue")
                }
            }
            attributes.append(.init(key, text))
        }
        return attributes
    }
}
