import EdgeSyncCodec
import EdgeSyncProtocol

extension Batch {
    /// The readings of `range` (which must lie within `sequences`) as a batch of their own, keeping
    /// only the series keys they use. The spool re-encodes what stays after a partial ack this way;
    /// the uploader splits batches and resends remainders with it.
    func slice(_ range: SequenceRange) -> Batch {
        let start = Int(range.first - firstSequence)
        let end = Int(range.last - firstSequence)
        var keys: [String] = []
        var map = [Int](repeating: -1, count: seriesKeys.count)
        let sliced = readings[start...end].map { reading -> Reading in
            if map[reading.series] < 0 {
                map[reading.series] = keys.count
                keys.append(seriesKeys[reading.series])
            }
            return Reading(series: map[reading.series], timestamp: reading.timestamp, value: reading.value)
        }
        return Batch(
            device: device, stream: stream, firstSequence: range.first, seriesKeys: keys, readings: sliced,
            sentAt: sentAt)
    }

    /// The batch's sequence numbers as an inclusive range; nil for an empty batch.
    var sequenceRange: SequenceRange? { SequenceRange(sequences) }
}
