/**
 * The proxy's backend latency histogram: plain counts on the hot path, exposed as prom-client exposes
 * its own Histogram (checked against one), and summed across --workers.
 */
import { AggregatorRegistry, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { LatencyHistogram } from '../../src/proxy/latency-histogram.js';

const BOUNDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1];
const SAMPLES = [0.00005, 0.0001, 0.0003, 0.0003, 0.002, 0.02, 0.7, 3];

describe('LatencyHistogram', () => {
  it('exposes exactly what a prom-client Histogram does for the same observations', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const fast = new LatencyHistogram('x_latency_seconds', 'help text', BOUNDS, ours);
    const reference = new Histogram({ name: 'x_latency_seconds', help: 'help text', buckets: BOUNDS, registers: [theirs] });
    for (const s of SAMPLES) {
      fast.observe(s);
      reference.observe(s);
    }
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toContain('x_latency_seconds_bucket{le="0.0005"} 4');
    expect(text).toContain('x_latency_seconds_bucket{le="+Inf"} 8');
  });

  it('is summed across --workers processes like the other metrics', async () => {
    const workers = [new Registry(), new Registry()];
    const histograms = workers.map((r) => new LatencyHistogram('x_latency_seconds', 'help text', BOUNDS, r));
    histograms[0]!.observe(0.0003);
    histograms[1]!.observe(0.0003);
    histograms[1]!.observe(0.02);
    const merged = AggregatorRegistry.aggregate(await Promise.all(workers.map((r) => r.getMetricsAsJSON())));
    const text = await merged.metrics();
    expect(text).toContain('x_latency_seconds_bucket{le="0.0005"} 2');
    expect(text).toContain('x_latency_seconds_count 3');
  });
});
