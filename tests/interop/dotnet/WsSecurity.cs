// WS-Security UsernameToken through the ASMX proxy Mono's wsdl tool generates from the served
// WSDL (tests/test_ws_security_clients.py): the proxy's Security header (SecurityHeaderType),
// PasswordText and then PasswordDigest (computed here, as the integration guide says), with
// mustUnderstand, on ParseCSR with no AuthToken. Usage: mono wssecurity.exe URL CODE USER PASSWORD CSR-FILE;
// prints one line "<kind> <SuccessCode>" per call.
using System;
using System.Globalization;
using System.IO;
using System.Security.Cryptography;
using System.Text;

static class WsSecurityClient
{
    const string Profile = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0";
    const string Base64Binary =
        "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";

    static SecurityHeaderType Token(string user, string password, bool digest)
    {
        var token = new UsernameTokenType { Username = new AttributedString { Value = user } };
        if (!digest)
        {
            token.Password = new PasswordString { Type = Profile + "#PasswordText", Value = password };
        }
        else
        {
            var nonce = new byte[16];
            using (var random = RandomNumberGenerator.Create()) random.GetBytes(nonce);
            string created = DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
            byte[] rest = Encoding.UTF8.GetBytes(created + password);
            var material = new byte[nonce.Length + rest.Length];
            nonce.CopyTo(material, 0);
            rest.CopyTo(material, nonce.Length);
            string value;
            using (var sha1 = SHA1.Create()) value = Convert.ToBase64String(sha1.ComputeHash(material));
            token.Password = new PasswordString { Type = Profile + "#PasswordDigest", Value = value };
            token.Nonce = new EncodedString { EncodingType = Base64Binary, Value = Convert.ToBase64String(nonce) };
            token.Created = created;
        }
        return new SecurityHeaderType { UsernameToken = token, MustUnderstand = true };
    }

    static void Main(string[] args)
    {
        var service = new OrderService { Url = args[0] };
        string code = args[1], user = args[2], password = args[3], csr = File.ReadAllText(args[4]);
        foreach (string kind in new[] { "text", "digest", "wrong-digest" })
        {
            service.Security = Token(user, kind == "wrong-digest" ? password + "x" : password, kind != "text");
            ParseCSRResult result = service.ParseCSR(new ParseCSRRequest {
                QueryRequestHeader = new QueryRequestHeader { PartnerCode = code }, CSR = csr });
            Console.WriteLine(kind + " " + result.QueryResponseHeader.SuccessCode);
        }
    }
}
