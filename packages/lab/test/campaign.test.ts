import { describe, expect, it } from 'vitest';
import { campaignMarkdown, runCampaign } from '../src/campaign';

describe('runCampaign', () => {
  it('detects the harvest student through the organisation layer and traces the leak to its heavy accounts only', async () => {
    const report = await runCampaign({
      organisations: 2,
      accounts: 400,
      samples: 400,
      probes: 400,
      probeTokens: 48,
      teacherTokens: 80,
      seed: 'campaign-test',
      workers: 1,
    });
    expect(report.settings.candidates).toBe(800);
    // Both teachers' students are radioactive on the organisation key; the clean one is not.
    expect(report.radioactivity.layered.log10PValue).toBeLessThan(-6);
    expect(report.radioactivity.single.log10PValue).toBeLessThan(-6);
    expect(report.radioactivity.clean.log10PValue).toBeGreaterThan(-3);
    expect(report.radioactivity.ratio).toBeGreaterThan(0.5);
    // The leak: some of the accounts that wrote many samples are attributed, none of those that wrote one, and
    // nobody outside the leak.
    const heavy = report.leak.bands.filter((b) => b.samples[0] >= 20);
    expect(heavy.reduce((n, b) => n + b.attributed, 0)).toBeGreaterThan(0);
    expect(report.leak.bands[0].attributed).toBe(0);
    expect(report.leak.falseAttributions).toBe(0);
    expect(report.leak.organisationLog10PValue).toBeLessThan(-50);
    const md = campaignMarkdown(report);
    expect(md).toContain('An n-gram student is not an LLM');
    expect(md).toContain('Layered / one-layer');
  }, 300_000);

  it('refuses impossible settings in one line', async () => {
    await expect(runCampaign({ organisations: 0 })).rejects.toThrow(/--organisations must be an integer/);
    await expect(runCampaign({ rho: 0 })).rejects.toThrow(/--rho must be in \(0, 1\]/);
  });
});
