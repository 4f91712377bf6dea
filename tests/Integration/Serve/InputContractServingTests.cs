using System.Net.Http.Json;
using System.Text.Json;
using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Tools.Serve;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace ModelGuardian.Tests.Serve;

/// <summary>
/// The default victim served as it was trained: its weight file says 28×28 grey queries are padded to 32×32, so a
/// client sending Fashion-MNIST's own 28×28 PNGs over HTTP gets exactly what the victim gives the padded images in
/// process, and the same accuracy. (Before the contract, the server resized them to 32×32 and scored 66 %.)
/// A flagged query's answer is DPreds of the same softmax, so the expected answer follows the in-process verdict.
/// </summary>
public sealed class InputContractServingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-contract-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private static byte[] GreyPng(ReadOnlySpan<byte> grey28)
    {
        using var image = Image.LoadPixelData<L8>(grey28, FashionMnist.Side, FashionMnist.Side);
        using var ms = new MemoryStream();
        image.Save(ms, new PngEncoder { ColorType = PngColorType.Grayscale });
        return ms.ToArray();
    }

    [Fact]
    public async Task Native_28x28_pngs_over_http_get_the_padded_images_answers()
    {
        const int count = 200;
        string Default(string file) => ServeConfig.DefaultModelsPrefix + file;
        var config = new ServeConfig
        {
            Directory = _dir, Backend = "cpu",
            Victim = new ModelSource { Model = Default("victim.mgw") },
            Transform = new ModelSource { Model = Default("transform.mgw") },
            Detectors = [new ModelSource { Name = "no-transposed", Threshold = 0.5, Model = Default("detector-no-transposed.mgw") }],
            Policy = new PolicyConfig { Tau = 1_000_000, V = 0.5 },
            Ledger = new LedgerConfig { Kind = "sqlite", Path = "ledger.db" },
            Limits = new LimitsConfig { RatePerSecond = 10_000, RateBurst = 10_000 },
        };
        using var host = GuardianHost.Start(config);
        Assert.Equal(FashionMnist.Contract, host.Models.Victim.Network.Architecture.Input);
        var app = GuardianServer.Build(host, ["http://127.0.0.1:0"]);
        await app.StartAsync();
        try
        {
            string key = ApiKeys.Generate();
            await host.Ledger.AddAsync("client", ApiKeys.Hash(key), DateTimeOffset.UtcNow);
            using var http = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
            http.DefaultRequestHeaders.Authorization = new("Bearer", key);

            var test = FashionMnist.Load(DatasetSplit.Test);
            int overHttp = 0, inProcess = 0;
            for (int i = 0; i < count; i++)
            {
                var content = new ByteArrayContent(GreyPng(test.Image(i)));
                content.Headers.ContentType = new("image/png");
                var r = await http.PostAsync("/v1/predict", content);
                Assert.True(r.IsSuccessStatusCode, await r.Content.ReadAsStringAsync());
                var answer = (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("probabilities").EnumerateArray().Select(e => e.GetDouble()).ToArray();
                var evaluation = host.Models.Evaluate([test.ToPlanar32(i)])[0];
                var padded = evaluation.Probabilities;
                var expected = evaluation.Verdict.Flagged ? DeceptivePredictions.Apply(padded, 0.5) : padded;
                Assert.Equal(expected, answer); // bit for bit: the contract pads exactly as training did
                overHttp += DeceptivePredictions.ArgMax(answer) == test.Label(i) ? 1 : 0;
                inProcess += DeceptivePredictions.ArgMax(padded) == test.Label(i) ? 1 : 0;
            }
            Assert.Equal(inProcess, overHttp);
            Assert.True(overHttp > count * 0.8, $"{overHttp} of {count} right: the victim is not being fed what it was trained on");
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }
}
