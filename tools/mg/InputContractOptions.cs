using System.CommandLine;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;

namespace ModelGuardian.Tools;

/// <summary>The options that record a model's input contract (`mg convert`), parsed into one checked contract.</summary>
internal sealed class InputContractOptions
{
    private readonly Option<string?> _fit = new("--fit") { Description = "how queries reach the input side: resize, pad (square images of --content-side, padded) or center-crop (shorter side to --resize-side, then cropped)" };
    private readonly Option<string?> _filter = new("--filter") { Description = "the contract's resize filter: bilinear (default) or bicubic" };
    private readonly Option<int?> _contentSide = new("--content-side") { Description = "--fit pad: the image side before padding (e.g. 28 for Fashion-MNIST padded to 32)" };
    private readonly Option<float?> _padValue = new("--pad-value") { Description = "--fit pad: the padding's value on the 0…255 scale (default 0)" };
    private readonly Option<int?> _resizeSide = new("--resize-side") { Description = "--fit center-crop: the shorter side after resizing, before the crop (e.g. 256 for 224 crops)" };
    private readonly Option<bool> _grey = new("--grey") { Description = "the model was trained on grey images repeated in three channels: colour queries are made grey first" };

    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { _fit, _filter, _contentSide, _padValue, _resizeSide, _grey }) command.Options.Add(o);
    }

    /// <summary>The contract the options describe, or null when none of them is given.</summary>
    public InputContract? Read(ParseResult parse, int inputSide)
    {
        string? fit = parse.GetValue(_fit), filter = parse.GetValue(_filter);
        float? pad = parse.GetValue(_padValue);
        int? content = parse.GetValue(_contentSide), resize = parse.GetValue(_resizeSide);
        bool grey = parse.GetValue(_grey);
        if (fit == null)
        {
            if (filter != null || pad != null || content != null || resize != null || grey)
                throw new ArgumentException("--filter, --content-side, --pad-value, --resize-side and --grey describe an input contract: give --fit too.");
            return null;
        }
        var contract = new InputContract
        {
            Fit = fit switch
            {
                "resize" => InputFit.Resize,
                "pad" => InputFit.Pad,
                "center-crop" => InputFit.CenterCrop,
                _ => throw new ArgumentException($"--fit must be resize, pad or center-crop, got '{fit}'."),
            },
            Filter = filter switch
            {
                null or "bilinear" => ResizeFilter.Bilinear,
                "bicubic" => ResizeFilter.Bicubic,
                _ => throw new ArgumentException($"--filter must be bilinear or bicubic, got '{filter}'."),
            },
            ContentSide = content ?? 0,
            ResizeSide = resize ?? 0,
            PadValue = pad ?? 0,
            Grey = grey,
        };
        contract.Validate(inputSide);
        return contract;
    }
}
