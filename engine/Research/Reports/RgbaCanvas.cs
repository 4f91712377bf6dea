using ModelGuardian.Engine.Imaging;

namespace ModelGuardian.Engine.Reports;

/// <summary>An 8-bit RGBA colour.</summary>
public readonly record struct Rgba(byte R, byte G, byte B, byte A = 255)
{
    public static Rgba White => new(255, 255, 255);
    public static Rgba Black => new(0, 0, 0);

    /// <summary>From 0xRRGGBB, opaque.</summary>
    public static Rgba FromHex(int rgb) => new((byte)(rgb >> 16), (byte)(rgb >> 8), (byte)rgb);

    public override string ToString() => $"#{R:X2}{G:X2}{B:X2}{(A == 255 ? "" : A.ToString("X2"))}";
}

/// <summary>
/// A small RGBA raster (row-major, 4 bytes a pixel) with the primitives a chart needs: pixels, rectangles,
/// anti-aliased thick lines and discs, and text in <see cref="BitmapFont"/>. Pixel (x, y) covers the square
/// [x, x+1)×[y, y+1), so continuous coordinates put pixel centres at +0.5. Every drawing call ignores what falls
/// outside the canvas or the current clip rectangle.
/// </summary>
public sealed class RgbaCanvas
{
    private int _clipX0, _clipY0, _clipX1, _clipY1; // half-open [x0, x1) × [y0, y1)

    public RgbaCanvas(int width, int height) : this(width, height, Rgba.White) { }

    public RgbaCanvas(int width, int height, Rgba background)
    {
        if (width < 1 || height < 1) throw new ArgumentOutOfRangeException(nameof(width), $"Canvas size must be positive, got {width}×{height}.");
        Width = width;
        Height = height;
        Pixels = new byte[checked(width * height * 4)];
        for (int i = 0; i < Pixels.Length; i += 4)
        {
            Pixels[i] = background.R; Pixels[i + 1] = background.G; Pixels[i + 2] = background.B; Pixels[i + 3] = background.A;
        }
        ResetClip();
    }

    public int Width { get; }
    public int Height { get; }
    /// <summary>RGBA bytes, row-major, <see cref="Width"/>×<see cref="Height"/>×4.</summary>
    public byte[] Pixels { get; }

    /// <summary>Limits drawing to the rectangle (intersected with the canvas) until <see cref="ResetClip"/>.</summary>
    public void SetClip(int x, int y, int width, int height)
    {
        _clipX0 = Math.Clamp(x, 0, Width);
        _clipY0 = Math.Clamp(y, 0, Height);
        _clipX1 = Math.Clamp(x + Math.Max(0, width), _clipX0, Width);
        _clipY1 = Math.Clamp(y + Math.Max(0, height), _clipY0, Height);
    }

    public void ResetClip() => (_clipX0, _clipY0, _clipX1, _clipY1) = (0, 0, Width, Height);

    public Rgba GetPixel(int x, int y)
    {
        if ((uint)x >= (uint)Width || (uint)y >= (uint)Height)
            throw new ArgumentOutOfRangeException(nameof(x), $"({x}, {y}) is outside the {Width}×{Height} canvas.");
        int i = (y * Width + x) * 4;
        return new Rgba(Pixels[i], Pixels[i + 1], Pixels[i + 2], Pixels[i + 3]);
    }

    public void SetPixel(int x, int y, Rgba color)
    {
        if (x < _clipX0 || x >= _clipX1 || y < _clipY0 || y >= _clipY1) return;
        int i = (y * Width + x) * 4;
        Pixels[i] = color.R; Pixels[i + 1] = color.G; Pixels[i + 2] = color.B; Pixels[i + 3] = color.A;
    }

    /// <summary>Blends <paramref name="color"/> over the pixel with opacity <paramref name="coverage"/> × alpha (0…1).</summary>
    public void BlendPixel(int x, int y, Rgba color, double coverage)
    {
        if (x < _clipX0 || x >= _clipX1 || y < _clipY0 || y >= _clipY1) return;
        double a = Math.Clamp(coverage, 0, 1) * color.A / 255.0;
        if (a <= 0) return;
        if (a >= 1) { SetPixel(x, y, color); return; }
        int i = (y * Width + x) * 4;
        Pixels[i] = Mix(Pixels[i], color.R, a);
        Pixels[i + 1] = Mix(Pixels[i + 1], color.G, a);
        Pixels[i + 2] = Mix(Pixels[i + 2], color.B, a);
        Pixels[i + 3] = (byte)Math.Round(Pixels[i + 3] + (255 - Pixels[i + 3]) * a);
    }

    private static byte Mix(byte dst, byte src, double a) => (byte)Math.Round(dst + (src - dst) * a);

    public void FillRect(int x, int y, int width, int height, Rgba color)
    {
        int x0 = Math.Max(x, _clipX0), y0 = Math.Max(y, _clipY0);
        int x1 = Math.Min(x + width, _clipX1), y1 = Math.Min(y + height, _clipY1);
        for (int py = y0; py < y1; py++)
            for (int px = x0; px < x1; px++)
                SetPixel(px, py, color);
    }

    /// <summary>A one-pixel outline of the rectangle.</summary>
    public void StrokeRect(int x, int y, int width, int height, Rgba color)
    {
        if (width <= 0 || height <= 0) return;
        FillRect(x, y, width, 1, color);
        FillRect(x, y + height - 1, width, 1, color);
        FillRect(x, y, 1, height, color);
        FillRect(x + width - 1, y, 1, height, color);
    }

    /// <summary>
    /// An anti-aliased line of the given thickness with round caps, from (x0, y0) to (x1, y1) in continuous
    /// coordinates: each pixel is covered by how far its centre lies inside the stroke.
    /// </summary>
    public void DrawLine(double x0, double y0, double x1, double y1, Rgba color, double thickness = 2.0)
    {
        if (!double.IsFinite(x0) || !double.IsFinite(y0) || !double.IsFinite(x1) || !double.IsFinite(y1)) return;
        double hw = Math.Max(thickness, 0.5) / 2;
        int bx0 = (int)Math.Max(_clipX0, Math.Floor(Math.Min(x0, x1) - hw - 1));
        int bx1 = (int)Math.Min(_clipX1 - 1, Math.Ceiling(Math.Max(x0, x1) + hw + 1));
        int by0 = (int)Math.Max(_clipY0, Math.Floor(Math.Min(y0, y1) - hw - 1));
        int by1 = (int)Math.Min(_clipY1 - 1, Math.Ceiling(Math.Max(y0, y1) + hw + 1));
        double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
        for (int py = by0; py <= by1; py++)
        {
            double cy = py + 0.5;
            for (int px = bx0; px <= bx1; px++)
            {
                double cx = px + 0.5;
                double t = len2 > 0 ? Math.Clamp(((cx - x0) * dx + (cy - y0) * dy) / len2, 0, 1) : 0;
                double ex = cx - (x0 + t * dx), ey = cy - (y0 + t * dy);
                double coverage = hw + 0.5 - Math.Sqrt(ex * ex + ey * ey);
                if (coverage > 0) BlendPixel(px, py, color, coverage);
            }
        }
    }

    /// <summary>An anti-aliased filled disc.</summary>
    public void FillCircle(double cx, double cy, double radius, Rgba color)
    {
        if (!double.IsFinite(cx) || !double.IsFinite(cy) || !(radius > 0)) return;
        int x0 = (int)Math.Max(_clipX0, Math.Floor(cx - radius - 1)), x1 = (int)Math.Min(_clipX1 - 1, Math.Ceiling(cx + radius + 1));
        int y0 = (int)Math.Max(_clipY0, Math.Floor(cy - radius - 1)), y1 = (int)Math.Min(_clipY1 - 1, Math.Ceiling(cy + radius + 1));
        for (int py = y0; py <= y1; py++)
            for (int px = x0; px <= x1; px++)
            {
                double ex = px + 0.5 - cx, ey = py + 0.5 - cy;
                double coverage = radius + 0.5 - Math.Sqrt(ex * ex + ey * ey);
                if (coverage > 0) BlendPixel(px, py, color, coverage);
            }
    }

    /// <summary>An anti-aliased filled diamond (a square turned 45°) reaching <paramref name="radius"/> from its centre.</summary>
    public void FillDiamond(double cx, double cy, double radius, Rgba color)
    {
        if (!double.IsFinite(cx) || !double.IsFinite(cy) || !(radius > 0)) return;
        int x0 = (int)Math.Max(_clipX0, Math.Floor(cx - radius - 1)), x1 = (int)Math.Min(_clipX1 - 1, Math.Ceiling(cx + radius + 1));
        int y0 = (int)Math.Max(_clipY0, Math.Floor(cy - radius - 1)), y1 = (int)Math.Min(_clipY1 - 1, Math.Ceiling(cy + radius + 1));
        for (int py = y0; py <= y1; py++)
            for (int px = x0; px <= x1; px++)
            {
                double l1 = Math.Abs(px + 0.5 - cx) + Math.Abs(py + 0.5 - cy);
                double coverage = (radius - l1) / Math.Sqrt(2) + 0.5;
                if (coverage > 0) BlendPixel(px, py, color, coverage);
            }
    }

    /// <summary>Width in pixels of <paramref name="text"/> drawn at <paramref name="scale"/> (no trailing spacing).</summary>
    public static int MeasureText(string text, int scale = 2) =>
        string.IsNullOrEmpty(text) ? 0 : (text.Length * BitmapFont.Advance - 1) * scale;

    /// <summary>Height in pixels of a line of text at <paramref name="scale"/>, descenders included.</summary>
    public static int TextHeight(int scale = 2) => BitmapFont.LineHeight * scale;

    /// <summary>
    /// Draws <paramref name="text"/> with its top-left corner at (x, y), each font pixel a
    /// <paramref name="scale"/>×<paramref name="scale"/> block. Control characters draw as spaces, other
    /// characters outside printable ASCII as '?'.
    /// </summary>
    public void DrawText(int x, int y, string text, Rgba color, int scale = 2)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(scale, 1);
        if (string.IsNullOrEmpty(text)) return;
        for (int i = 0; i < text.Length; i++)
        {
            char c = char.IsControl(text[i]) ? ' ' : text[i];
            int gx = x + i * BitmapFont.Advance * scale;
            for (int col = 0; col < BitmapFont.GlyphWidth; col++)
                for (int row = 0; row < BitmapFont.LineHeight; row++)
                    if (BitmapFont.IsSet(c, col, row))
                        FillRect(gx + col * scale, y + row * scale, scale, scale, color);
        }
    }

    /// <summary>
    /// Draws <paramref name="text"/> turned 90° counter-clockwise (reading bottom to top), with the bottom-left
    /// corner of the turned text at (x, y): it spans x … x + <see cref="TextHeight"/> and y − <see cref="MeasureText"/> … y.
    /// </summary>
    public void DrawTextVertical(int x, int y, string text, Rgba color, int scale = 2)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(scale, 1);
        if (string.IsNullOrEmpty(text)) return;
        for (int i = 0; i < text.Length; i++)
        {
            char c = char.IsControl(text[i]) ? ' ' : text[i];
            for (int col = 0; col < BitmapFont.GlyphWidth; col++)
                for (int row = 0; row < BitmapFont.LineHeight; row++)
                    if (BitmapFont.IsSet(c, col, row))
                    {
                        int tx = (i * BitmapFont.Advance + col) * scale, ty = row * scale;
                        FillRect(x + ty, y - tx - scale, scale, scale, color);
                    }
        }
    }

    /// <summary>Encodes the canvas as an RGBA PNG into <paramref name="destination"/>.</summary>
    public void WritePng(Stream destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ImageCodec.WritePng(Pixels, Width, Height, 4, destination);
    }

    public byte[] ToPng()
    {
        using var ms = new MemoryStream();
        WritePng(ms);
        return ms.ToArray();
    }
}
